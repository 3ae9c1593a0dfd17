"""The session's redis-server and PostgreSQL (started here, stopped by pid), shared by the
taskiq tests; each test takes its own queue, key prefixes and schema (:class:`Shared`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._redis_server import RedisServer, running_redis
from tests._servers import PostgresServer, postgres_server

from ._taskiq_cluster import Shared, new_tag


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def dsn(postgres: PostgresServer) -> str:
    return postgres.create_database("runstream_taskiq_tests")


@pytest.fixture
def shared(redis_server: RedisServer, dsn: str) -> Shared:
    return Shared(redis_server.url, dsn, new_tag())
