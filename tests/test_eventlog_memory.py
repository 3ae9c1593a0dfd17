"""The built-in ``memory`` event log passes the event log contract."""

from __future__ import annotations

import asyncio
import enum
import gc
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from runstream import (
    Config,
    EventLog,
    EventRecord,
    MemoryEventLog,
    Runtime,
    _eventlog_memory,
    hookimpl,
)
from runstream.hookspecs import Register

from tests._eventlog_contract import EventLogContract, aclosing_log, chunks, collect, record


class TestMemoryEventLog(EventLogContract):
    @pytest.fixture
    async def event_log(self) -> AsyncIterator[EventLog]:
        async for log in aclosing_log(MemoryEventLog(max_events=100, max_run_bytes=50_000)):
            yield log

    @pytest.fixture
    def second_log(self) -> None:
        return None

    @pytest.fixture
    async def short_ttl_log(self) -> AsyncIterator[EventLog]:
        async for log in aclosing_log(MemoryEventLog(ttl=0.1)):
            yield log


class TestPackedMemoryEventLog(TestMemoryEventLog):
    """The contract again, with the records of every run packed as soon as it ends."""

    @pytest.fixture(autouse=True)
    def pack_at_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_eventlog_memory, "PACK_AFTER", 0.0)


def kept_bytes_per_run(runs: int, data: Callable[[int], dict[str, Any]]) -> float:
    """Bytes a memory log holds per ended run of 27 records (a chat), by tracemalloc."""

    async def fill(log: MemoryEventLog) -> None:
        for n in range(runs):
            run_id = f"r{n}"
            await log.create(run_id, pipeline="p", owner=None)
            await log.append(run_id, [record(seq, data=data(seq)) for seq in range(1, 27)])
            await log.append(run_id, [record(27, "run.completed", {"status": "completed"})])
            await log.end(run_id, "completed")

    log = MemoryEventLog(max_runs=runs + 1)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        asyncio.run(fill(log))
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / runs
    finally:
        tracemalloc.stop()


def test_an_ended_run_is_kept_in_a_fraction_of_the_memory(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A run that ended a while ago (``PACK_AFTER``) is kept packed, in about a fifth of the
    memory: 1,000 kept chats (``max_runs``) hold 2 MB, not 10 MB."""
    def chunk(seq: int) -> dict[str, Any]:
        return {"type": "chunk", "text": f"word{seq} "}

    unpacked = kept_bytes_per_run(300, chunk)
    monkeypatch.setattr(_eventlog_memory, "PACK_AFTER", 0.0)
    packed = kept_bytes_per_run(300, chunk)
    assert unpacked > 6_000 and packed < unpacked / 3, (unpacked, packed)


async def test_a_packed_run_replays_exactly_what_it_was_given(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_eventlog_memory, "PACK_AFTER", 0.0)
    log = MemoryEventLog()
    given = [record(1, "run.started", {"pipeline": "p"}),
             record(2, data={"text": "é \u2028 \ud800", "n": 2**70, "f": 1.5, "yes": True,
                            "no": None, "nested": {"l": [1, (2, "x"), []], 3: "an int key"}}),
             record(3, data={"float key": {1.5: False}}),
             record(4, "run.completed", {"status": "completed"})]
    await log.create("r", pipeline="p", owner=None)
    await log.append("r", given)
    await log.end("r", "completed")
    for after in (0, 1, 2, 3):
        got = await collect(log, "r", after)
        assert got == given[after:]
        assert repr(got) == repr(given[after:])  # the same types: tuples, bools, int keys
    info = await log.get_run("r")
    assert info is not None and (info.first_seq, info.last_seq) == (1, 4)


async def test_a_replayed_run_is_unpacked_once_and_packed_again_later(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay reads a long run in many writes: it unpacks it once, not once per write; the
    run is packed again when a later run ends (PACK_AFTER after the replay began)."""
    monkeypatch.setattr(_eventlog_memory, "PACK_AFTER", 0.0)
    log = MemoryEventLog()
    await log.create("long", pipeline="p", owner=None)
    await log.append("long", chunks(1, 5_000))
    await log.end("long", "completed")
    kept = log.get_now("long")
    assert kept is not None and kept.packed is not None
    assert [r[0] for r in kept.since(0)[:2]] == [1, 2]
    assert kept.packed is None  # unpacked for the reads that follow
    assert [r[0] for r in kept.since(4_998)] == [4_999, 5_000]
    await log.create("next", pipeline="p", owner=None)
    await log.end("next", "completed")
    assert kept.packed is not None
    assert await collect(log, "long", 2) == (await collect(log, "long"))[2:]


async def test_a_run_its_client_holds_is_packed_once_the_client_lets_go(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_eventlog_memory, "PACK_AFTER", 0.0)
    log = MemoryEventLog()
    await log.create("held", pipeline="p", owner=None)
    await log.append("held", chunks(1, 30))
    log.hold("held", 10)  # its client has sent up to 10
    await log.end("held", "completed")
    kept = log.get_now("held")
    assert kept is not None and kept.packed is None  # its client still reads it
    log.hold("held", None)  # the client is done with it
    await log.create("next", pipeline="p", owner=None)
    await log.end("next", "completed")
    assert kept.packed is not None
    assert [r[0] for r in await collect(log, "held")] == list(range(1, 31))


class Level(enum.IntEnum):
    HIGH = 1


async def test_a_run_whose_data_is_not_plain_replays_the_very_same_objects(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``marshal`` would give a bytearray back as bytes: such a run is kept as it is."""
    monkeypatch.setattr(_eventlog_memory, "PACK_AFTER", 0.0)
    log = MemoryEventLog()
    for run_id, value in (("buffer", bytearray(b"x")), ("enum", Level.HIGH),
                          ("object", object()), ("nested", [1, ({"b": bytearray(b"x")},)]),
                          ("key", {"a": {Level.HIGH: "x"}}), ("bytes", b"x")):
        given = [record(1, data={"value": value}), record(2, "run.completed", {})]
        await log.create(run_id, pipeline="p", owner=None)
        await log.append(run_id, given)
        await log.end(run_id, "completed")
        got = await collect(log, run_id)
        assert got == given and got[0][4]["value"] is value


async def test_the_default_event_log_is_memory_and_configurable() -> None:
    async with Runtime(Config.model_validate({"event_log": {"type": "memory", "ttl": 5,
                                                            "max_events": 7}})) as runtime:
        log = runtime.event_log
        assert isinstance(log, MemoryEventLog)
        assert (log.ttl, log.max_events, log.shared) == (5, 7, False)
        assert runtime.reconnect_grace == 0.0
    async with Runtime(Config()) as runtime:
        assert type(runtime.event_log) is MemoryEventLog


async def test_total_bytes_bound_forgets_ended_runs_first() -> None:
    log = MemoryEventLog(max_total_bytes=20_000)
    await log.create("ended", pipeline="p", owner=None)
    await log.append("ended", chunks(1, 50))
    await log.end("ended", "completed")
    await log.create("running", pipeline="p", owner=None)
    await log.append("running", chunks(1, 200))
    assert await log.get_run("ended") is None
    assert await log.get_run("running") is not None
    await log.close()


def test_an_unknown_event_log_type_is_a_config_error() -> None:
    from runstream import ConfigError

    with pytest.raises(ConfigError, match="event_log"):
        Runtime(Config.model_validate({"event_log": {"type": "nosuch"}}))


class CountingLog(MemoryEventLog):
    """A plugin's event log: the memory one, counting what it was told."""

    label: str = "counting"


class CountingPlugin:
    @hookimpl
    def register_event_logs(self, register: Register) -> None:
        register("counting", CountingLog)


async def test_a_plugin_registers_an_event_log_that_the_config_picks() -> None:
    config = Config.model_validate({"event_log": {"type": "counting", "label": "mine"}})
    async with Runtime(config, plugins=[CountingPlugin()], entry_points=False) as runtime:
        assert isinstance(runtime.event_log, CountingLog)
        assert runtime.event_log.label == "mine"
        info = next(i for i in runtime.plugins.infos if i.name.startswith("CountingPlugin"))
        assert info.registered == {"event_logs": ["counting"]}


def padded(first: int, last: int, size: int) -> list[EventRecord]:
    return [record(seq, data={"type": "chunk", "text": "x" * size})
            for seq in range(first, last + 1)]


async def test_max_runs_forgets_the_oldest_ended_runs_first() -> None:
    log = MemoryEventLog(max_runs=2)
    await log.create("running", pipeline="p", owner=None)
    await log.create("ended", pipeline="p", owner=None)
    await log.end("ended", "completed")
    await log.create("new", pipeline="p", owner=None)
    assert log.run_ids() == ["running", "new"]


async def test_running_runs_are_never_forgotten_for_bytes() -> None:
    log = MemoryEventLog(max_run_bytes=400_000, max_total_bytes=500_000, ttl=3600)
    for run_id in ("r1", "r2"):
        await log.create(run_id, pipeline="p", owner=None)
        await log.append(run_id, padded(1, 30, 10_000))
    # Over the budget with running runs alone: they are kept, each within max_run_bytes ...
    assert log.run_ids() == ["r1", "r2"] and log.bytes_kept() > 500_000
    # ... and a run that ends meanwhile goes at once, as the oldest ended run.
    await log.create("short", pipeline="p", owner=None)
    await log.append("short", padded(1, 3, 10_000))
    await log.end("short", "completed")
    assert log.run_ids() == ["r1", "r2"]
    assert log.bytes_kept() == log.bytes_kept("r1") + log.bytes_kept("r2")


async def test_the_bytes_of_ended_runs_are_released_after_ttl() -> None:
    log = MemoryEventLog(ttl=0.05)
    for run_id in ("a", "b"):
        await log.create(run_id, pipeline="p", owner=None)
        await log.append(run_id, padded(1, 50, 10_000))
        await log.end(run_id, "completed")
    assert log.bytes_kept() > 1_000_000
    for _ in range(500):  # the expiry timer releases them: nobody has to ask
        if log.bytes_kept() == 0:
            break
        await asyncio.sleep(0.01)
    assert log.bytes_kept() == 0 and log.run_ids() == []


async def test_a_held_reader_keeps_what_it_has_not_read_and_full_says_when_to_wait() -> None:
    log = MemoryEventLog(max_events=1_000, max_run_bytes=50_000)
    await log.create("h", pipeline="p", owner=None)
    log.hold("h", 0)
    await log.append("h", padded(1, 4, 10_000))
    assert not log.full("h", 0)
    await log.append("h", padded(5, 8, 10_000))  # past the byte bound, none read: all kept
    kept = await collect(log, "h", follow=False)
    assert [r[0] for r in kept] == list(range(1, 9)) and log.full("h", 0)
    log.hold("h", 6)  # read up to 6: those may go, the rest stay
    await log.append("h", padded(9, 9, 10_000))
    kept = await collect(log, "h", follow=False)
    assert kept[0][0] <= 7 and kept[-1][0] == 9 and not log.full("h", 9)
    log.hold("h", None)  # the reader left: back within the bound
    assert log.bytes_kept("h") <= 50_000
    # By count: max_events records past the cursor fill it.
    small = MemoryEventLog(max_events=3)
    await small.create("c", pipeline="p", owner=None)
    await small.append("c", chunks(1, 3))
    assert small.full("c", 0) and not small.full("c", 1)


async def test_a_record_that_is_not_json_raises_after_the_records_before_it() -> None:
    log = MemoryEventLog()
    await log.create("r1", pipeline="p", owner=None)
    bad = (3, 0.0, "step.event", "s", {"k": {(1, 2): "a key JSON cannot hold"}})
    with pytest.raises(TypeError):
        log.append_now("r1", [(1, 0.0, "step.event", "s", {"i": 1}),
                              (2, 0.0, "step.event", "s", {"i": 2}), bad,
                              (4, 0.0, "step.event", "s", {"i": 4})])
    kept = log.get_now("r1")
    assert kept is not None and kept.last_seq == 2  # counted: the next record follows them
    assert [r[0] for r in kept.since(0)] == [1, 2]
    log.append_now("r1", [(3, 0.0, "run.completed", None, {})])
    assert [r[0] for r in kept.since(0)] == [1, 2, 3]
    assert log.bytes_kept("r1") > 0


async def test_an_append_may_leave_one_reader_waiting() -> None:
    log = MemoryEventLog()
    await log.create("r1", pipeline="p", owner=None)
    kept = log.get_now("r1")
    assert kept is not None
    told_otherwise, other = kept.waiter(), kept.waiter()
    log.append_now("r1", [(1, 0.0, "step.event", "s", {"i": 1})], but=told_otherwise)
    assert other.done() and not told_otherwise.done()
    log.append_now("r1", [(2, 0.0, "step.event", "s", {"i": 2})])  # still waiting: woken
    assert told_otherwise.done()
    # The one told otherwise, alone: it stays waiting, append after append; a reader that
    # comes meanwhile is woken by the next one.
    alone = kept.waiter()
    log.append_now("r1", [(3, 0.0, "step.event", "s", {"i": 3})], but=alone)
    log.append_now("r1", [(4, 0.0, "step.event", "s", {"i": 4})], but=alone)
    assert not alone.done()
    late = kept.waiter()
    log.append_now("r1", [(5, 0.0, "step.event", "s", {"i": 5})], but=alone)
    assert late.done() and not alone.done()
    log.append_now("r1", [(6, 0.0, "step.event", "s", {"i": 6})])
    assert alone.done()
