"""Following runs through the tail (runstream_redis._tail): one pub/sub connection per log
instance whatever the number of readers, every record handed exactly once and in order, what a
reader does when nobody publishes, and the tail losing its connection."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from runstream import EventLogError, EventRecord
from runstream_redis import RedisEventLog
from runstream_redis._codec import encode, entry_id

from tests._eventlog_contract import chunks, collect, record
from tests._redis_server import RedisServer


@pytest.fixture
async def probe(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client, to look at the server the way an operator would."""
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


class Follower:
    """A reader in a task, with an event set once it has seen ``seen_up_to``."""

    def __init__(self, log: RedisEventLog, run_id: str, after: int = 0) -> None:
        self.got: list[EventRecord] = []
        self.first = asyncio.Event()
        self.task = asyncio.create_task(self._read(log, run_id, after))

    async def _read(self, log: RedisEventLog, run_id: str, after: int) -> list[EventRecord]:
        async for batch in log.read(run_id, after):
            self.got.extend(batch)
            self.first.set()
        return self.got


async def test_300_readers_of_100_runs_share_one_pubsub_connection(
        make_log: Any, probe: Redis) -> None:
    writer, log = make_log(), make_log(max_connections=8)
    runs = [f"m{i}" for i in range(100)]
    for run_id in runs:
        await writer.create(run_id, pipeline="p", owner=None)
        await writer.append(run_id, chunks(1, 1))
    baseline = len(await probe.client_list())
    followers = [Follower(log, run_id) for run_id in runs for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(*(f.first.wait() for f in followers)), 30)
    # All 300 are following: one pub/sub connection, reads on the (small) commands pool.
    clients = await probe.client_list()
    assert len(await probe.client_list(_type="pubsub")) == 1
    assert len(clients) - baseline <= 8 + 1
    for first in range(2, 40, 3):
        await asyncio.gather(*(writer.append(r, chunks(first, first + 2)) for r in runs))
    await asyncio.gather(*(writer.append(r, [record(41, "run.completed", {})]) for r in runs))
    await asyncio.gather(*(writer.end(r, "completed") for r in runs))
    for follower in followers:
        got = await asyncio.wait_for(follower.task, 30)
        assert [r[0] for r in got] == list(range(1, 42))
    tail = log._tail
    assert tail is not None and not tail._runs  # every subscription was given back
    # Far fewer stream reads than records handed (most came in the published batches).
    print(f"{tail.reads} XREADs for 300 readers x 15 batches")
    assert tail.reads < 300
    await writer.close()
    await log.close()


async def test_two_readers_of_one_run_at_different_cursors(make_log: Any) -> None:
    writer, log = make_log(), make_log()
    await writer.create("c", pipeline="p", owner=None)
    await writer.append("c", chunks(1, 5))
    early, late = Follower(log, "c", 1), Follower(log, "c", 4)
    await asyncio.wait_for(asyncio.gather(early.first.wait(), late.first.wait()), 10)
    await writer.append("c", chunks(6, 8))
    await writer.append("c", [record(9, "run.completed", {})])
    assert [r[0] for r in await asyncio.wait_for(early.task, 10)] == list(range(2, 10))
    assert [r[0] for r in await asyncio.wait_for(late.task, 10)] == list(range(5, 10))
    await writer.close()
    await log.close()


async def test_readers_that_start_while_batches_are_appended_miss_nothing(
        make_log: Any) -> None:
    writer, log = make_log(), make_log()
    last = 300
    await writer.create("race", pipeline="p", owner=None)
    rng = random.Random(7)
    starts = sorted(rng.randrange(1, last) for _ in range(60))
    readers: list[tuple[int, asyncio.Task[list[EventRecord]]]] = []
    for seq in range(1, last):
        await writer.append("race", [record(seq, data={"s": seq})])
        while starts and starts[0] == seq:  # right after an append, before or after its
            starts.pop(0)                   # publish reached this process
            after = rng.randrange(0, seq + 1)
            readers.append((after, asyncio.create_task(collect(log, "race", after))))
        await asyncio.sleep(0)
    await writer.append("race", [record(last, "run.completed", {})])
    for after, task in readers:
        got = await asyncio.wait_for(task, 20)
        assert [r[0] for r in got] == list(range(after + 1, last + 1))
    await writer.close()
    await log.close()


async def test_a_batch_sent_again_is_handed_once(make_log: Any) -> None:
    writer, again, log = make_log(), make_log(), make_log()
    await writer.create("twice", pipeline="p", owner=None)
    await writer.append("twice", chunks(1, 2))
    follower = Follower(log, "twice")
    await asyncio.wait_for(follower.first.wait(), 10)
    await writer.append("twice", chunks(3, 5))
    # The same records again (a retried append): skipped by the stream, published again.
    await again.append("twice", chunks(3, 5))
    await again.append("twice", chunks(1, 6))
    await writer.append("twice", [record(7, "run.completed", {})])
    assert [r[0] for r in await asyncio.wait_for(follower.task, 10)] == list(range(1, 8))
    await writer.close()
    await again.close()
    await log.close()


async def test_the_end_of_a_run_without_terminal_record_reaches_its_readers_at_once(
        make_log: Any) -> None:
    writer, log = make_log(), make_log(block=60)  # so only the end's publish can stop them
    await writer.create("cut", pipeline="p", owner=None)
    await writer.append("cut", chunks(1, 2))
    followers = [Follower(log, "cut") for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(*(f.first.wait() for f in followers)), 10)
    await writer.end("cut", "failed")
    for follower in followers:
        assert [r[0] for r in await asyncio.wait_for(follower.task, 10)] == [1, 2]
    await writer.close()
    await log.close()


async def test_a_writer_that_publishes_nothing_is_followed_every_block(
        make_log: Any, probe: Redis, prefix: str) -> None:
    """A process of an older version appends with XADD alone (a rolling upgrade)."""
    writer, log = make_log(), make_log(block=0.3)
    await writer.create("old", pipeline="p", owner=None)
    follower = Follower(log, "old")
    events = f"{prefix}run:old:events"
    for seq in (1, 2):
        await probe.xadd(events, {"r": encode(record(seq))}, id=entry_id(seq))
    await asyncio.wait_for(follower.first.wait(), 10)
    await probe.xadd(events, {"r": encode(record(3, "run.completed", {}))}, id=entry_id(3))
    assert [r[0] for r in await asyncio.wait_for(follower.task, 10)] == [1, 2, 3]
    await writer.close()
    await log.close()


async def test_max_followers_no_longer_bounds_the_followers(make_log: Any) -> None:
    log = make_log(max_followers=3, block=60)  # accepted, unused
    await log.create("f", pipeline="p", owner=None)
    await log.append("f", chunks(1, 1))
    followers = [Follower(log, "f") for _ in range(12)]
    await asyncio.wait_for(asyncio.gather(*(f.first.wait() for f in followers)), 10)
    started = time.monotonic()
    await log.append("f", chunks(2, 5))
    await log.append("f", [record(6, "run.completed", {})])
    for follower in followers:
        assert [r[0] for r in await asyncio.wait_for(follower.task, 10)] == [1, 2, 3, 4, 5, 6]
    assert time.monotonic() - started < 5  # none waited for a connection (nor for `block`)
    await log.close()


async def test_a_lost_pubsub_connection_loses_nothing(make_log: Any, probe: Redis) -> None:
    writer, log = make_log(), make_log(block=60)
    await writer.create("k", pipeline="p", owner=None)
    await writer.append("k", chunks(1, 1))
    follower = Follower(log, "k")
    await asyncio.wait_for(follower.first.wait(), 10)
    # Its connection goes (an operator, a proxy): appends made until it is back are read
    # from the stream once the tail has subscribed again.
    assert await probe.client_kill_filter(_type="pubsub") == 1
    await writer.append("k", chunks(2, 4))
    await writer.append("k", [record(5, "run.completed", {})])
    assert [r[0] for r in await asyncio.wait_for(follower.task, 10)] == [1, 2, 3, 4, 5]
    await writer.close()
    await log.close()


async def test_closing_the_log_stops_its_readers_with_an_error(make_log: Any) -> None:
    log = make_log(block=60)
    await log.create("z", pipeline="p", owner=None)
    await log.append("z", chunks(1, 1))
    follower = Follower(log, "z")
    await asyncio.wait_for(follower.first.wait(), 10)
    await log.close()
    with pytest.raises(EventLogError, match="read run 'z'"):
        await asyncio.wait_for(follower.task, 10)


async def test_redis_restarted_while_readers_wait(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", None)
    server.start()
    try:
        log = RedisEventLog(url=server.url, block=60, socket_timeout=2)
        for i in range(5):
            await log.create(f"r{i}", pipeline="p", owner=None)
            await log.append(f"r{i}", chunks(1, 1))
        followers = [Follower(log, f"r{i}") for i in range(5) for _ in range(2)]
        await asyncio.wait_for(asyncio.gather(*(f.first.wait() for f in followers)), 10)
        stopped = time.monotonic()
        server.stop()
        for follower in followers:
            with pytest.raises(EventLogError, match=r"read run 'r\d'.*Redis at redis://"):
                await asyncio.wait_for(follower.task, 10)
        assert time.monotonic() - stopped < 2  # told at once, not after `block`
        server.start()  # same port, empty: following works again, on a new connection
        await log.create("back", pipeline="p", owner=None)
        await log.append("back", chunks(1, 1))
        again = Follower(log, "back")
        await asyncio.wait_for(again.first.wait(), 10)
        await log.append("back", [record(2, "run.completed", {})])
        assert [r[0] for r in await asyncio.wait_for(again.task, 10)] == [1, 2]
        await log.close()
    finally:
        server.stop()
