"""The behaviour every event log has (docs/event-log.md): subclass :class:`EventLogContract`
with an ``event_log`` fixture that yields a fresh, started log, and a ``second_log`` fixture
that yields another instance on the same backend (for a shared log, another "process"; for a
log that is not shared, None)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runstream import EventLog, EventRecord, RunIdError, RunNotFoundError


def record(seq: int, type_: str = "step.event", data: dict[str, Any] | None = None
           ) -> EventRecord:
    return (seq, time.time(), type_, None if type_.startswith("run.") else "s",
            {"type": "chunk", "text": f"t{seq}"} if data is None else data)


def chunks(first: int, last: int) -> list[EventRecord]:
    return [record(seq) for seq in range(first, last + 1)]


async def collect(log: EventLog, run_id: str, after: int = 0, *, follow: bool = True
                  ) -> list[EventRecord]:
    got: list[EventRecord] = []
    async for batch in log.read(run_id, after, follow=follow):
        got.extend(batch)
    return got


class EventLogContract:
    """Tests every event log must pass."""

    async def test_append_then_read_everything(self, event_log: EventLog) -> None:
        await event_log.create("r1", pipeline="p", owner="alice")
        await event_log.append("r1", chunks(1, 3))
        await event_log.append("r1", [record(4, "run.completed", {"status": "completed"})])
        await event_log.end("r1", "completed")
        got = await collect(event_log, "r1")
        assert [r[0] for r in got] == [1, 2, 3, 4]
        assert got[1][2:] == ("step.event", "s", {"type": "chunk", "text": "t2"})
        info = await event_log.get_run("r1")
        assert info is not None
        assert (info.pipeline, info.owner, info.status, info.last_seq) == (
            "p", "alice", "completed", 4)
        assert info.ended

    async def test_meta_is_kept_with_the_run(self, event_log: EventLog) -> None:
        meta = {"protocol": "openai", "options": {"model": "m\u2028\"x", "include_usage": True}}
        await event_log.create("m1", pipeline="p", owner=None, meta=meta)
        await event_log.create("m2", pipeline="p", owner=None)
        first, second = await event_log.get_run("m1"), await event_log.get_run("m2")
        assert first is not None and second is not None
        assert first.meta == meta
        assert second.meta == {}

    async def test_read_after_a_cursor(self, event_log: EventLog) -> None:
        await event_log.create("r2", pipeline="p", owner=None)
        await event_log.append("r2", chunks(1, 5))
        await event_log.append("r2", [record(6, "run.failed", {"error_type": "X"})])
        await event_log.end("r2", "failed")
        assert [r[0] for r in await collect(event_log, "r2", 4)] == [5, 6]
        assert await collect(event_log, "r2", 6) == []

    async def test_duplicate_run_refused(self, event_log: EventLog) -> None:
        await event_log.create("dup", pipeline="p", owner=None)
        with pytest.raises(RunIdError):
            await event_log.create("dup", pipeline="q", owner=None)

    async def test_unknown_run(self, event_log: EventLog) -> None:
        assert await event_log.get_run("nope") is None
        with pytest.raises(RunNotFoundError):
            await collect(event_log, "nope")
        assert await event_log.cancel("nope") is False

    async def test_follow_gets_live_records_until_the_end(self, event_log: EventLog) -> None:
        await event_log.create("live", pipeline="p", owner=None)
        await event_log.append("live", chunks(1, 2))
        seen: list[int] = []
        two = asyncio.Event()

        async def reader() -> None:
            async for batch in event_log.read("live", 0):
                seen.extend(r[0] for r in batch)
                if len(seen) >= 2:
                    two.set()

        task = asyncio.create_task(reader())
        await asyncio.wait_for(two.wait(), 5)
        await event_log.append("live", chunks(3, 4))
        await event_log.append("live", [record(5, "run.cancelled", {"reason": "x"})])
        await event_log.end("live", "cancelled")
        await asyncio.wait_for(task, 5)
        assert seen == [1, 2, 3, 4, 5]

    async def test_without_follow_a_running_run_reads_what_is_there(
            self, event_log: EventLog) -> None:
        await event_log.create("nf", pipeline="p", owner=None)
        await event_log.append("nf", chunks(1, 3))
        got = await asyncio.wait_for(collect(event_log, "nf", follow=False), 5)
        assert [r[0] for r in got] == [1, 2, 3]

    async def test_end_without_a_terminal_record_ends_readers(self, event_log: EventLog) -> None:
        await event_log.create("cut", pipeline="p", owner=None)
        await event_log.append("cut", chunks(1, 1))
        task = asyncio.create_task(collect(event_log, "cut"))
        await asyncio.sleep(0)
        await event_log.end("cut", "failed")
        got = await asyncio.wait_for(task, 5)
        assert [r[0] for r in got] == [1]
        info = await event_log.get_run("cut")
        assert info is not None and info.status == "failed"

    async def test_bounded_in_events_keeping_the_newest(self, event_log: EventLog) -> None:
        limit = event_log.max_events
        total = limit + 25
        await event_log.create("big", pipeline="p", owner=None)
        await event_log.append("big", chunks(1, total))
        got = await collect(event_log, "big", follow=False)
        assert len(got) <= limit
        assert got[-1][0] == total
        info = await event_log.get_run("big")
        assert info is not None and info.first_seq == got[0][0] > 1

    async def test_bounded_in_bytes_keeping_the_newest(self, event_log: EventLog) -> None:
        await event_log.create("bytes", pipeline="p", owner=None)
        text = "x" * 1000
        count = event_log.max_run_bytes // 1000 + 20
        await event_log.append("bytes", [record(i, data={"type": "chunk", "text": text})
                                         for i in range(1, count + 1)])
        got = await collect(event_log, "bytes", follow=False)
        assert got[-1][0] == count
        assert sum(len(r[4]["text"]) for r in got) <= event_log.max_run_bytes

    async def test_cancel_reaches_the_subscriber(self, event_log: EventLog,
                                                 second_log: EventLog | None) -> None:
        heard: list[tuple[str, str]] = []
        got = asyncio.Event()

        def handler(run_id: str, reason: str) -> None:
            heard.append((run_id, reason))
            got.set()

        unsubscribe = event_log.subscribe_cancel(handler)
        try:
            await event_log.create("c1", pipeline="p", owner=None)
            sender = second_log if second_log is not None else event_log
            assert await sender.cancel("c1", "stop pressed") is True
            await asyncio.wait_for(got.wait(), 2)
            assert heard == [("c1", "stop pressed")]
            await event_log.append("c1", [record(1, "run.cancelled", {"reason": "x"})])
            await event_log.end("c1", "cancelled")
            assert await sender.cancel("c1") is False  # it has ended
        finally:
            unsubscribe()

    async def test_slots_are_shared_and_freed(self, event_log: EventLog,
                                              second_log: EventLog | None) -> None:
        other = second_log if second_log is not None else event_log
        assert await event_log.acquire_slot("s1", 2)
        assert await other.acquire_slot("s2", 2)
        assert not await event_log.acquire_slot("s3", 2)
        assert not await other.acquire_slot("s3", 2)
        assert await event_log.slots_in_use() == 2
        await other.release_slot("s2")
        assert await event_log.acquire_slot("s3", 2)
        await event_log.release_slot("s1")
        await event_log.release_slot("s3")
        assert await other.slots_in_use() == 0

    async def test_readers_are_counted(self, event_log: EventLog,
                                       second_log: EventLog | None) -> None:
        other = second_log if second_log is not None else event_log
        await event_log.create("rd", pipeline="p", owner=None)
        assert await event_log.readers("rd") == 0
        await event_log.add_reader("rd")
        await other.add_reader("rd")
        assert await other.readers("rd") == 2
        await event_log.remove_reader("rd")
        assert await event_log.readers("rd") == 1

    async def test_many_runs_at_once(self, event_log: EventLog) -> None:
        async def one(i: int) -> list[EventRecord]:
            run_id = f"m{i}"
            await event_log.create(run_id, pipeline="p", owner=f"o{i}")
            reader = asyncio.create_task(collect(event_log, run_id))
            for seq in range(1, 21, 5):
                await event_log.append(run_id, [record(s, data={"i": i, "s": s})
                                                for s in range(seq, seq + 5)])
            await event_log.append(run_id, [record(21, "run.completed", {})])
            await event_log.end(run_id, "completed")
            return await asyncio.wait_for(reader, 10)

        results = await asyncio.gather(*(one(i) for i in range(50)))
        for i, got in enumerate(results):
            assert [r[0] for r in got] == list(range(1, 22))
            assert all(r[4].get("i", i) == i for r in got)

    async def test_append_soon_calls_back_once_the_records_are_in(
            self, event_log: EventLog) -> None:
        await event_log.create("soon", pipeline="p", owner=None)
        loop = asyncio.get_running_loop()
        for seq in (1, 4):  # one append in flight at a time, as runstream-sse's tee sends
            outcome = loop.create_future()
            event_log.append_soon("soon", chunks(seq, seq + 2), outcome.set_result)
            assert not outcome.done()  # never called back before append_soon returned
            assert await asyncio.wait_for(outcome, 10) is None
        assert [r[0] for r in await collect(event_log, "soon", follow=False)] == list(
            range(1, 7))

    async def test_ended_runs_expire_after_ttl(self, short_ttl_log: EventLog) -> None:
        await short_ttl_log.create("old", pipeline="p", owner=None)
        await short_ttl_log.append("old", [record(1, "run.completed", {})])
        await short_ttl_log.end("old", "completed")
        deadline = time.monotonic() + 10
        while await short_ttl_log.get_run("old") is not None:
            assert time.monotonic() < deadline, "the run did not expire"
            await asyncio.sleep(0.05)


async def aclosing_log(log: EventLog) -> AsyncIterator[EventLog]:
    await log.start()
    try:
        yield log
    finally:
        await log.close()
