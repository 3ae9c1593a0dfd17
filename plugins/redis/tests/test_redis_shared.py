"""What the redis event log does across processes, beyond the contract: leases that a killed
process stops renewing, many readers and writers at once, text that is not plain, and the
runtime picking it from the config."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from runstream import Config, EventRecord, RunIdError, RunNotFoundError, Runtime
from runstream_redis import RedisEventLog

from tests._eventlog_contract import chunks, collect, record
from tests._redis_server import RedisServer

HOLDER = """
import asyncio, sys
from runstream_redis import RedisEventLog

async def main():
    url, prefix, lease = sys.argv[1], sys.argv[2], float(sys.argv[3])
    log = RedisEventLog(url=url, key_prefix=prefix, slot_lease=lease)
    await log.start()
    await log.create("held", pipeline="p", owner=None)
    await log.append("held", [(1, 0.0, "step.event", "s", {}), (2, 0.0, "step.event", "s", {})])
    assert await log.acquire_slot("a", 2) and await log.acquire_slot("b", 2)
    await log.add_reader("held")
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def until(check: Any, within: float, what: str) -> float:
    """Poll the async ``check`` until it is true; how long that took."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within, f"{what} within {within} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_a_killed_process_frees_its_slots_readers_and_followers_within_its_lease(
        redis_server: RedisServer, prefix: str, make_log: Any) -> None:
    lease = 2.0  # renewed every 0.67 s: slack for a loaded machine
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, redis_server.url, prefix,
                               str(lease)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), 30)
        assert line.strip() == "ready"
        log: RedisEventLog = make_log(slot_lease=lease, block=0.3)
        follower = asyncio.create_task(collect(log, "held"))
        assert (await log.slots_in_use(), await log.readers("held")) == (2, 1)
        assert not await log.acquire_slot("c", 2)
        await asyncio.sleep(lease * 1.5)  # past its lease: the holder renews while it lives
        assert (await log.slots_in_use(), await log.readers("held")) == (2, 1)
        assert not follower.done()  # the run's driver lives: its follower waits
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        freed = await until(lambda: _all_free(log), lease * 3, "slots and readers freed")
        print(f"slots freed {freed:.2f} s after SIGKILL (lease {lease} s)")
        assert await log.acquire_slot("c", 2)
        # Its run will never end: its follower stops once the driver's lease has expired.
        assert [r[0] for r in await asyncio.wait_for(follower, lease * 3)] == [1, 2]
        info = await log.get_run("held")
        assert info is not None and info.status == "running"
        await log.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()


async def _all_free(log: RedisEventLog) -> bool:
    return await log.slots_in_use() == 0 and await log.readers("held") == 0


async def test_close_frees_this_processs_slots_and_readers_at_once(make_log: Any) -> None:
    log, other = make_log(), make_log()
    await log.create("x", pipeline="p", owner=None)
    assert await log.acquire_slot("x", 1)
    await log.add_reader("x")
    await log.add_reader("x")
    await log.remove_reader("x")
    await log.remove_reader("x")
    await log.remove_reader("x")  # never below zero
    await log.add_reader("x")
    await log.close()
    assert (await other.slots_in_use(), await other.readers("x")) == (0, 0)
    await other.close()


async def test_a_driver_that_listens_late_finds_the_cancel_in_the_run(make_log: Any) -> None:
    driver, web = make_log(), make_log()
    await driver.create("late", pipeline="p", owner=None)
    assert await driver.cancel_reason("late") is None
    assert await web.cancel("late", "stop pressed")
    assert await driver.cancel_reason("late") == "stop pressed"
    await driver.close()
    await web.close()


async def test_cancel_is_heard_quickly_by_another_instance(make_log: Any) -> None:
    driver, web = make_log(), make_log()
    heard: asyncio.Queue[tuple[str, str, float]] = asyncio.Queue()
    driver.subscribe_cancel(lambda r, why: heard.put_nowait((r, why, time.monotonic())))
    await driver.create("q", pipeline="p", owner=None)
    sent = time.monotonic()
    assert await web.cancel("q", "stop")
    run_id, reason, at = await asyncio.wait_for(heard.get(), 5)
    print(f"cancel heard after {(at - sent) * 1000:.1f} ms")
    assert (run_id, reason) == ("q", "stop")
    await driver.close()
    await web.close()


async def test_200_runs_written_and_followed_at_once_by_other_instances(make_log: Any) -> None:
    writer, reader, late = make_log(), make_log(), make_log()
    last = 41

    async def write(i: int) -> None:
        run_id = f"w{i}"
        for first in range(1, last, 8):
            await writer.append(run_id, [record(s, data={"i": i, "s": s})
                                         for s in range(first, first + 8)])
            await asyncio.sleep(0)
        await writer.append(run_id, [record(last, "run.completed", {"i": i})])
        await writer.end(run_id, "completed")

    for i in range(200):
        await writer.create(f"w{i}", pipeline="p", owner=None)
    rng = random.Random(12)
    cursors = [rng.randrange(0, last) for _ in range(200)]
    readers = [asyncio.create_task(collect(reader, f"w{i}")) for i in range(200)]
    # And 200 more on one run, each from a cursor of its own (a reconnect).
    resumed = [asyncio.create_task(collect(late, "w0", cursor)) for cursor in cursors]
    await asyncio.gather(*(write(i) for i in range(200)))
    results = await asyncio.wait_for(asyncio.gather(*readers, *resumed), 60)
    for i, got in enumerate(results[:200]):
        assert [r[0] for r in got] == list(range(1, last + 1))
        assert {r[4]["i"] for r in got} == {i}
    for cursor, got in zip(cursors, results[200:], strict=True):
        assert [r[0] for r in got] == list(range(cursor + 1, last + 1))
    for log in (writer, reader, late):
        await log.close()


async def test_any_text_comes_back_as_it_went_in(make_log: Any) -> None:
    log = make_log()
    data = {"lone": "a\ud800b\udfff", "pair": "\U0001f600", "cjk": "漢字", "nul": "\x00",
            "nested": [1, 2.5, None, True, {"k": "\u2028"}]}
    sent: list[EventRecord] = [(1, 1234.5, "step.event", "s", data),
                               (2, 1234.75, "run.completed", None, {})]
    await log.create("t", pipeline="p", owner=None)
    await log.append("t", sent)
    await log.end("t", "completed")
    assert await collect(log, "t") == sent
    await log.close()


async def test_any_owner_and_reason_come_back_as_they_went_in(make_log: Any) -> None:
    log, other = make_log(), make_log()
    heard: asyncio.Queue[str] = asyncio.Queue()
    log.subscribe_cancel(lambda run_id, reason: heard.put_nowait(reason))
    await log.create("o", pipeline="pipé", owner="\ud800 ünïcode")
    assert await other.cancel("o", "why \udfff")
    assert await asyncio.wait_for(heard.get(), 5) == "why \udfff"
    assert await other.cancel_reason("o") == "why \udfff"
    info = await other.get_run("o")
    assert info is not None and (info.pipeline, info.owner) == ("pipé", "\ud800 ünïcode")
    await log.close()
    await other.close()


async def test_bounds_keep_the_newest_and_get_run_says_what_is_kept(make_log: Any) -> None:
    log = make_log(max_events=30, max_run_bytes=100_000)
    await log.create("b", pipeline="p", owner=None)
    for first in range(1, 200, 10):
        await log.append("b", chunks(first, first + 9))
    info = await log.get_run("b")
    assert info is not None and (info.first_seq, info.last_seq) == (171, 200)
    assert [r[0] for r in await collect(log, "b", follow=False)] == list(range(171, 201))
    await log.end("b", "completed")
    info = await log.get_run("b")
    assert info is not None and (info.first_seq, info.last_seq, info.status) == (
        171, 200, "completed")
    await log.close()


async def test_a_run_without_records_and_a_ttl_of_zero(make_log: Any) -> None:
    log = make_log(ttl=0)
    await log.create("e", pipeline="p", owner=None)
    info = await log.get_run("e")
    assert info is not None and (info.first_seq, info.last_seq) == (1, 0)
    reader = asyncio.create_task(collect(log, "e"))
    await asyncio.sleep(0.05)
    await log.end("e", "failed")
    assert await asyncio.wait_for(reader, 10) == []
    assert await log.get_run("e") is None
    await log.close()


async def test_another_instance_may_append_to_a_run(make_log: Any) -> None:
    web, worker = make_log(), make_log()
    await web.create("t", pipeline="p", owner="o")
    await worker.append("t", chunks(1, 3))
    await worker.append("nobody-made-this", chunks(1, 3))  # ignored, as for an ended run
    assert await web.get_run("nobody-made-this") is None
    await worker.append("t", [record(4, "run.completed", {})])
    await worker.end("t", "completed")
    assert [r[0] for r in await collect(web, "t")] == [1, 2, 3, 4]
    # A run that ended (cancelled from the web side) takes nothing more from a worker that
    # had not written to it yet: checked in the append's own round trip.
    await web.create("u", pipeline="p", owner="o")
    await web.append("u", chunks(1, 2))
    await web.end("u", "cancelled")
    late = make_log()
    await late.append("u", chunks(3, 5))
    assert [r[0] for r in await collect(web, "u")] == [1, 2]
    await late.close()
    await web.close()
    await worker.close()


async def test_the_config_picks_it(redis_server: RedisServer, prefix: str) -> None:
    config = Config.model_validate({"event_log": {
        "type": "redis", "url": redis_server.url, "key_prefix": prefix, "ttl": 60}})
    async with Runtime(config) as runtime:  # through its entry point
        log = runtime.event_log
        assert isinstance(log, RedisEventLog) and log.shared and log.ttl == 60
        assert runtime.reconnect_grace == 5.0
        await log.create("cfg", pipeline="p", owner=None)
        assert (await log.get_run("cfg")) is not None


async def test_an_id_that_is_no_run_id_names_no_run(make_log: Any) -> None:
    log = make_log()
    await log.create("a", pipeline="p", owner=None)
    await log.append("a", chunks(1, 2))
    # "a:events" would be run a's stream key: it is no run id, so it names no run.
    assert await log.get_run("a:events") is None
    with pytest.raises(RunNotFoundError):
        await collect(log, "a:events")
    assert await log.cancel("a:events") is False
    assert await log.readers("a:events") == 0
    with pytest.raises(RunIdError, match="not valid"):
        await log.create("a:events", pipeline="p", owner=None)
    assert [r[0] for r in await collect(log, "a", follow=False)] == [1, 2]
    await log.close()
