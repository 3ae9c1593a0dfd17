"""A real redis-server for the whole session (tests/_redis_server.py starts and stops it), and
event logs on it, each test under a key prefix of its own."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runstream_redis import RedisEventLog

from tests._redis_server import RedisServer, running_redis

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses (they share the session's Redis)."""
    return f"t{next(_prefixes)}:"


@pytest.fixture
def make_log(redis_server: RedisServer, prefix: str) -> Any:
    """``make_log(**options)``: a RedisEventLog on the session's Redis under ``prefix``."""

    def make(**options: Any) -> RedisEventLog:
        options.setdefault("url", redis_server.url)
        options.setdefault("key_prefix", prefix)
        return RedisEventLog(**options)

    return make
