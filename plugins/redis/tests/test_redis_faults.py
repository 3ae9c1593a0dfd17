"""What a user sees when Redis is not there, or goes away mid-run and comes back: a clear
``EventLogError`` naming the server with its password masked, at once rather than a hang, and
the same log object working again once Redis is back."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runstream import Config, ConfigError, EventLogError, Runtime
from runstream_redis import RedisEventLog, mask_url

from tests._eventlog_contract import chunks, collect, record
from tests._redis_server import RedisServer, free_port

PASSWORD = "hunter2-SECRET"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (it is stopped and started again), with a password."""
    server = RedisServer(tmp_path / "redis", None, "--requirepass", PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def url_of(server: RedisServer, password: str = PASSWORD) -> str:
    return f"redis://:{password}@127.0.0.1:{server.port}/0"


def test_the_password_is_masked() -> None:
    assert mask_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("rediss://me:pw@h/1") == "rediss://me:***@h/1"
    assert mask_url("redis://h:6379/0") == "redis://h:6379/0"
    log = RedisEventLog(url="redis://:pw@h:6379/0")
    assert "pw" not in repr(log) and "pw" not in str(log.describe())
    assert log.describe()["url"] == "redis://:***@h:6379/0"


def test_a_url_that_is_not_redis_is_a_config_error_without_its_password() -> None:
    config = Config.model_validate({"event_log": {"type": "redis",
                                                  "url": "http://:pw@127.0.0.1:1/"}})
    with pytest.raises(ConfigError, match="not a Redis URL") as caught:
        Runtime(config)
    assert "pw" not in str(caught.value)


async def test_unreachable_at_start_is_a_clear_error_at_once() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    config = Config.model_validate({"event_log": {"type": "redis", "url": url}})
    runtime = Runtime(config)
    with pytest.raises(EventLogError) as caught:
        await asyncio.wait_for(runtime.start(), 10)
    await runtime.aclose()
    message = str(caught.value)
    assert f"redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in message
    assert "is running" in message
    assert PASSWORD not in message


async def test_a_wrong_password_is_a_clear_error(own_redis: RedisServer) -> None:
    log = RedisEventLog(url=url_of(own_redis, "not-the-one"))
    with pytest.raises(EventLogError, match="password") as caught:
        await asyncio.wait_for(log.start(), 10)
    assert "not-the-one" not in str(caught.value)
    await log.close()


async def test_redis_lost_mid_run_then_back(own_redis: RedisServer,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = RedisEventLog(url=url_of(own_redis), block=0.5)
    other = RedisEventLog(url=url_of(own_redis))
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    log.subscribe_cancel(lambda run_id, reason: heard.put_nowait((run_id, reason)))
    await log.start()
    await log.create("r", pipeline="p", owner=None)
    await log.append("r", chunks(1, 3))
    follower = asyncio.create_task(collect(log, "r"))
    got_three = [r[0] for r in await collect(log, "r", follow=False)]
    assert got_three == [1, 2, 3]

    own_redis.stop()
    # Every operation fails at once with the server named, and the follower is told too.
    with pytest.raises(EventLogError, match=r"redis://:\*\*\*@127\.0\.0\.1"):
        await asyncio.wait_for(log.append("r", chunks(4, 4)), 10)
    with pytest.raises(EventLogError):
        await asyncio.wait_for(collect(log, "r"), 10)
    with pytest.raises(EventLogError):
        await asyncio.wait_for(follower, 10)
    with pytest.raises(EventLogError):
        await asyncio.wait_for(log.cancel("r"), 10)

    own_redis.start()  # same port; the data is gone (no persistence)
    # The same objects work again: redis-py reconnects; the listener subscribes again.
    await log.create("r2", pipeline="p", owner="o")
    await log.append("r2", chunks(1, 2))
    reader = asyncio.create_task(collect(log, "r2"))
    await log.append("r2", [record(3, "run.completed", {})])
    await log.end("r2", "completed")
    assert [r[0] for r in await asyncio.wait_for(reader, 10)] == [1, 2, 3]
    assert await other.cancel("r2") is False  # ended
    await log.create("r3", pipeline="p", owner=None)
    assert await other.cancel("r3", "stop") is True
    assert await asyncio.wait_for(heard.get(), 10) == ("r3", "stop")
    await log.close()
    await other.close()
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)
    assert any("cancel signals" in r.getMessage() for r in caplog.records)


async def test_a_killed_server_fails_a_blocked_reader_promptly(own_redis: RedisServer) -> None:
    log = RedisEventLog(url=url_of(own_redis))
    await log.create("k", pipeline="p", owner=None)
    reading = asyncio.Event()

    async def follow() -> Any:
        async for _ in log.read("k"):
            reading.set()

    await log.append("k", chunks(1, 1))
    task = asyncio.create_task(follow())
    await asyncio.wait_for(reading.wait(), 10)
    own_redis.stop()  # while the reader waits in XREAD BLOCK
    with pytest.raises(EventLogError, match="read run 'k'"):
        await asyncio.wait_for(task, 10)
    await log.close()


async def test_a_redis_that_stops_answering_fails_calls_within_the_socket_timeout(
        own_redis: RedisServer) -> None:
    log = RedisEventLog(url=url_of(own_redis), socket_timeout=0.5, block=0.5)
    await log.create("h", pipeline="p", owner=None)
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)  # up, but answering nothing
    try:
        with pytest.raises(EventLogError, match="Timeout"):
            await asyncio.wait_for(log.append("h", chunks(1, 1)), 10)
        with pytest.raises(EventLogError):
            await asyncio.wait_for(collect(log, "h"), 10)
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    await log.create("h2", pipeline="p", owner=None)
    await log.append("h2", [record(1, "run.completed", {})])
    assert [r[0] for r in await collect(log, "h2")] == [1]
    await log.close()
