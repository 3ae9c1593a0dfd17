"""The writer (``_writer``): every write of every run of a process goes out in shared round
trips, and still each run's records arrive complete and in order, each caller hears its own
outcome, and ``close()`` sends what was queued."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runstream import EventLogError
from runstream_redis import RedisEventLog

from tests._eventlog_contract import chunks, collect, record
from tests._redis_server import RedisServer

RUNS = 40
BATCHES = 25


async def write_run(log: RedisEventLog, run_id: str) -> None:
    await log.create(run_id, pipeline="p", owner=None)
    seq = 0
    for batch in range(BATCHES):
        size = 1 + batch % 4
        await log.append(run_id, chunks(seq + 1, seq + size))
        seq += size
    await log.append(run_id, [record(seq + 1, "run.completed", {})])
    await log.end(run_id, "completed")


def expected_seqs() -> list[int]:
    return list(range(1, sum(1 + b % 4 for b in range(BATCHES)) + 2))


@pytest.mark.parametrize("queue", [10_000, 3])  # 3: callers keep waiting for room
async def test_many_runs_appending_at_once_arrive_complete_and_in_order(
        make_log: Any, queue: int) -> None:
    log, other = make_log(write_queue=queue), make_log()
    try:
        runs = [f"w{i}" for i in range(RUNS)]
        await asyncio.gather(*(write_run(log, run_id) for run_id in runs))
        for run_id in runs:  # read by another instance, as another process would
            got = await collect(other, run_id, follow=False)
            assert [r[0] for r in got] == expected_seqs(), run_id
            assert [r[4]["text"] for r in got[:-1]] == [f"t{r[0]}" for r in got[:-1]]
            assert got[-1][2] == "run.completed"
            info = await other.get_run(run_id)
            assert info is not None and info.status == "completed"
        writer = log._clients.writer if log._clients is not None else None
        assert writer is not None
        writes = RUNS * (BATCHES + 3)
        if queue > RUNS:  # the writes of concurrent runs shared their round trips
            assert writer.round_trips < writes / 4, (writer.round_trips, writes)
        else:  # each round trip took at most `queue` of them
            assert writer.round_trips >= writes / queue
    finally:
        await log.close()
        await other.close()


async def test_close_sends_the_appends_still_queued(make_log: Any) -> None:
    log, other = make_log(), make_log()
    runs = [f"c{i}" for i in range(10)]
    for run_id in runs:
        await log.create(run_id, pipeline="p", owner=None)
    # Each append queues its write before it first waits (tasks start in order), so all of
    # them are queued, none yet sent, when close() starts.
    appends = [asyncio.create_task(log.append(run_id, chunks(1, 50))) for run_id in runs]
    closing = asyncio.create_task(log.close())
    await asyncio.gather(*appends, closing)
    for run_id in runs:
        assert [r[0] for r in await collect(other, run_id, follow=False)] == list(range(1, 51))
    await other.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_every_caller_waiting_while_redis_is_down_gets_its_error_promptly(
        own_redis: RedisServer) -> None:
    log = RedisEventLog(url=own_redis.url)
    runs = [f"d{i}" for i in range(20)]
    for run_id in runs:
        await log.create(run_id, pipeline="p", owner=None)
        await log.append(run_id, chunks(1, 1))
    own_redis.stop()
    started = time.monotonic()
    outcomes = await asyncio.wait_for(asyncio.gather(
        *(log.append(run_id, chunks(2, 3)) for run_id in runs),
        *(log.end(run_id, "completed") for run_id in runs), return_exceptions=True), 10)
    assert time.monotonic() - started < 2  # a refused connection: at once, not a timeout
    assert len(outcomes) == 2 * len(runs)
    for outcome in outcomes:
        assert isinstance(outcome, EventLogError), outcome
        assert f"127.0.0.1:{own_redis.port}" in str(outcome)
    own_redis.start()  # the same log writes again once Redis is back
    await log.create("back", pipeline="p", owner=None)
    await log.append("back", [record(1, "run.completed", {})])
    assert [r[0] for r in await collect(log, "back")] == [1]
    await log.close()


async def test_a_batch_written_again_is_kept_once(make_log: Any) -> None:
    # As after a reply lost with its connection: the writer (or the tee) sends it again.
    log = make_log()
    await log.create("again", pipeline="p", owner=None)
    await log.append("again", chunks(1, 3))
    log._written.pop("again")  # what the log knows after a failed append
    await log.append("again", chunks(1, 5))
    await log.append("again", [record(6, "run.completed", {})])
    assert [r[0] for r in await collect(log, "again")] == [1, 2, 3, 4, 5, 6]
    await log.close()


async def test_callbacks_get_their_own_reply_or_error(
        make_log: Any, caplog: pytest.LogCaptureFixture) -> None:
    log = make_log()
    await log.create("cb", pipeline="p", owner=None)
    writer = log._connect().writer
    got: list[tuple[str, Any, BaseException | None]] = []
    finished = asyncio.Event()

    def then(name: str) -> Any:
        def call(reply: Any, error: BaseException | None) -> None:
            got.append((name, reply, error))
            if name == "raises":
                raise RuntimeError("a bug in a callback")
            if len(got) == 4:
                finished.set()
        return call

    meta = log._keys("cb")[0]
    writer.script_then("COUNT", [f"{log.key_prefix}slots"], [], then("count"))
    writer.script_then("COUNT", [meta], [], then("wrong type"))  # a hash is no sorted set
    writer.script_then("COUNT", [f"{log.key_prefix}slots"], [], then("raises"))
    writer.script_then("STATUS", [meta, log._drivers], ["cb"], then("status"))
    assert got == []  # never before script_then returned
    await asyncio.wait_for(finished.wait(), 10)
    assert [(name, reply) for name, reply, _ in got] == [
        ("count", 0), ("wrong type", None), ("raises", 0), ("status", b"running")]
    assert "WRONGTYPE" in str(got[1][2])
    assert "a write's callback failed" in caplog.text  # logged; the others got theirs
    await log.close()


async def test_append_soon_fails_promptly_without_redis_and_a_batch_sent_again_is_kept_once(
        own_redis: RedisServer) -> None:
    log = RedisEventLog(url=own_redis.url, write_queue=2)
    loop = asyncio.get_running_loop()

    async def soon(run_id: str, records: list[Any]) -> BaseException | None:
        outcome: asyncio.Future[BaseException | None] = loop.create_future()
        log.append_soon(run_id, records, outcome.set_result)
        return await asyncio.wait_for(outcome, 10)

    await log.create("s", pipeline="p", owner=None)
    assert await soon("s", chunks(1, 3)) is None
    own_redis.stop()
    started = time.monotonic()
    error = await soon("s", chunks(4, 5))
    assert time.monotonic() - started < 2  # a refused connection: at once
    assert isinstance(error, EventLogError) and f"127.0.0.1:{own_redis.port}" in str(error)
    assert "s" not in log._written  # what Redis holds is unknown now
    own_redis.start()  # empty again
    runs = [f"q{i}" for i in range(8)]
    for run_id in runs:
        await log.create(run_id, pipeline="p", owner=None)
    # A write queue of 2: most of these wait for room (in a task), all arrive in order.
    outcomes = await asyncio.gather(*(soon(run_id, chunks(1, 3)) for run_id in runs))
    assert outcomes == [None] * len(runs)
    log._written.pop("q0")  # as after a failed append whose write went through
    assert await soon("q0", chunks(1, 5)) is None  # sent again: each record kept once
    assert await soon("q0", [record(6, "run.completed", {})]) is None
    assert [r[0] for r in await collect(log, "q0")] == [1, 2, 3, 4, 5, 6]
    for run_id in runs[1:]:
        assert [r[0] for r in await collect(log, run_id, follow=False)] == [1, 2, 3]
    await log.close()
