"""``RunsInFlight`` owns the live runs: it makes them, runs and awaits their pump tasks; a
``LiveRun`` starts nothing by itself (issue 11)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any, ClassVar

import pytest
from pydantic import ConfigDict, Field
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    EventRecord,
    MemoryEventLog,
    Parallel,
    Runtime,
)
from runstream_async_python import AsyncPythonTask
from runstream_sse import RunsInFlight, _tee
from runstream_sse._live import LiveRun
from runstream_sse._tee import RunWriter


async def endless() -> AsyncGenerator[dict[str, Any], None]:
    while True:
        yield {"type": "chunk"}
        await asyncio.sleep(0.01)


ENDLESS = AsyncPipeline("endless", [AsyncPythonTask(name="llm", function=endless)])


def test_a_live_run_starts_no_task_when_made() -> None:
    # No event loop here: a constructor that started a task would raise.
    writer = RunWriter("r1", MemoryEventLog(), None, pipeline="p", owner=None)
    live = LiveRun(object(), writer)  # type: ignore[arg-type]
    assert not live.ended


async def test_the_registry_owns_the_pump_and_a_cancel_signal_reaches_it() -> None:
    async with Runtime(Config(run_log_store=ComponentConfig(type="memory"))) as runtime:
        runs = RunsInFlight.for_runtime(runtime)
        log = runtime.event_log
        writer = await runs.open_run("owned-1", "endless", None)
        live = runs.start(ENDLESS.stream(run_id="owned-1", config=runtime), writer)
        assert len(runs) == 1
        async for _batch in log.read("owned-1"):  # the pump appends whether or not anyone reads
            break
        assert await log.cancel("owned-1", "stopped")  # reaches the run through its owner
        records = [r async for batch in log.read("owned-1") for r in batch]
        await asyncio.wait_for(runs._pumps["owned-1"][1] if "owned-1" in runs._pumps
                               else asyncio.sleep(0), 5)
        assert live.ended and live.handle.done()
        assert len(runs) == 0 and runs._pumps == {}  # the pump task ended and was forgotten
        last = records[-1]
        assert last[2] == "run.cancelled"
        assert last[4]["reason"] == "stopped" and "duration_ms" in last[4]
        info = await log.get_run("owned-1")
        assert info is not None and info.status == "cancelled"
        assert not await log.cancel("owned-1")  # nothing left to cancel


async def burst(n: int) -> AsyncGenerator[dict[str, Any], None]:
    for i in range(n):
        yield {"type": "chunk", "i": i}


async def test_the_primary_reader_holds_the_pump_instead_of_losing_records() -> None:
    config = Config(run_log_store=ComponentConfig(type="memory"),
                    event_log=ComponentConfig(type="memory", max_events=5))
    pipeline = AsyncPipeline("burst", [AsyncPythonTask(name="llm", function=burst)])
    async with Runtime(config) as runtime:
        runs = RunsInFlight.for_runtime(runtime)
        log = runtime.event_log
        assert isinstance(log, MemoryEventLog)
        writer = await runs.open_run("held-1", "burst", None)
        live = runs.start(pipeline.stream({"n": 40}, run_id="held-1", config=runtime), writer)
        live.hold(0)  # a primary reader that has sent nothing yet
        sent: list[int] = []
        while not live.ended:
            kept = log.get_now("held-1")
            assert kept is not None
            records = kept.since(sent[-1] if sent else 0)
            if records:
                # Nothing after the reader's cursor was dropped: no gap, ever.
                assert records[0][0] == (sent[-1] if sent else 0) + 1
                assert len(records) <= 5
                sent.append(records[0][0])  # the reader sends one record at a time
                live.hold(sent[-1])
            else:
                await kept.waiter()
        assert sent == list(range(1, len(sent) + 1))
        tail = log.get_now("held-1")
        assert tail is not None and tail.last_seq > 40  # lifecycle events and the end


class GatedLog(MemoryEventLog):
    """A shared log whose appends wait for ``gate``; ``batches``: the seqs of each append."""

    shared: ClassVar[bool] = True
    model_config = ConfigDict(arbitrary_types_allowed=True)
    gate: asyncio.Event = Field(default_factory=asyncio.Event)
    batches: list[list[int]] = Field(default_factory=list)

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
        self.batches.append([r[0] for r in records])
        await self.gate.wait()
        await super().append(run_id, records)


def chunk(seq: int) -> EventRecord:
    return (seq, 0.0, "step.event", "s", {"i": seq})


async def test_the_run_goes_on_while_its_records_are_on_their_way_to_the_shared_log() -> None:
    local, shared = MemoryEventLog(), GatedLog()
    writer = RunWriter("t1", local, shared, pipeline="p", owner=None)
    await writer.create()
    for seq in range(1, 11):  # the shared log has not answered the first append yet
        await writer.append([chunk(seq)])
    assert [r[0] async for b in local.read("t1", follow=False) for r in b] == list(range(1, 11))
    info = await shared.get_run("t1")
    assert info is not None and info.last_seq == 0  # none of them is in the shared log yet
    shared.gate.set()
    await writer.append([(11, 0.0, "run.completed", None, {})])
    await writer.end("completed")  # after every record: they are all there, in order
    assert [r[0] async for b in shared.read("t1") for r in b] == list(range(1, 12))
    # One append at a time, each with every record that waited behind the one before.
    assert [seq for batch in shared.batches for seq in batch] == list(range(1, 12))
    assert len(shared.batches) < 11
    info = await shared.get_run("t1")
    assert info is not None and info.status == "completed"


async def test_a_run_far_ahead_of_the_shared_log_waits_for_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tee, "AHEAD", 4)
    local, shared = MemoryEventLog(), GatedLog()
    writer = RunWriter("t2", local, shared, pipeline="p", owner=None)
    await writer.create()
    for seq in (1, 2, 3):
        await writer.append([chunk(seq)])
    # The send of 1..3 is on its way when 4..7 come: AHEAD records wait behind it.
    appending = asyncio.create_task(writer.append([chunk(seq) for seq in range(4, 8)]))
    # Held until the shared log took the first append (a bound on waiting for what must not
    # happen, not a synchronisation).
    done, _ = await asyncio.wait({appending}, timeout=0.3)
    assert not done
    shared.gate.set()
    await appending
    await writer.end("completed")
    assert [r[0] async for b in shared.read("t2") for r in b] == list(range(1, 8))


class BrokenSoonLog(MemoryEventLog):
    """A shared log whose ``append_soon`` raises (a bug) while ``broken``."""

    shared: ClassVar[bool] = True
    broken: bool = True

    def append_soon(self, run_id: str, records: Sequence[EventRecord], done: Any) -> None:
        if self.broken:
            raise RuntimeError("a bug in append_soon")
        super().append_soon(run_id, records, done)


async def test_a_shared_log_whose_append_soon_raises_keeps_the_records_for_later(
        caplog: pytest.LogCaptureFixture) -> None:
    local, shared = MemoryEventLog(), BrokenSoonLog()
    writer = RunWriter("t3", local, shared, pipeline="p", owner=None)
    downs: list[str] = []
    writer.on_down = downs.append
    await writer.create()
    for seq in range(1, 4):  # the run goes on: its records are in the local log
        await writer.append([chunk(seq)])
    assert [r[0] async for b in local.read("t3", follow=False) for r in b] == [1, 2, 3]
    await writer.sent()
    # Its warning says why (here the log takes the retry of each, with append()).
    assert downs[0] == "event log: append failed: RuntimeError: a bug in append_soon"
    assert "the shared event log failed" in caplog.text
    shared.broken = False
    await writer.append([(4, 0.0, "run.completed", None, {})])
    await writer.end("completed")  # what waited goes out, in order, once
    assert [r[0] async for b in shared.read("t3") for r in b] == [1, 2, 3, 4]
    assert writer.down is None


async def ticking(n: int) -> AsyncGenerator[dict[str, Any], None]:
    for i in range(n):
        await asyncio.sleep(0)  # a token stream: the run yields between events
        yield {"i": i}


@pytest.mark.parametrize("trouble", ["suspends", "raises"])
async def test_the_run_writes_to_its_waiting_client_and_hands_trouble_to_the_writer(
        trouble: str) -> None:
    """While the starting client's writer waits, the run's task writes each record to it;
    a send that suspends is finished by the writer, one that fails ends the stream GONE."""
    from runstream_sse._serve import Outcome, stream_feed

    pipeline = AsyncPipeline("ticks", [AsyncPythonTask(name="llm", function=ticking)])
    bodies: list[bytes] = []
    senders: set[asyncio.Task[Any] | None] = set()
    stop = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message.get("more_body"):  # (the last, empty one is the response's own)
            senders.add(asyncio.current_task())
        if len(bodies) % 7 == 3:
            if trouble == "raises" and len(bodies) > 20:
                raise OSError("connection reset")
            await asyncio.sleep(0)  # the socket is full for a moment
        bodies.append(message.get("body", b""))

    async def receive() -> dict[str, Any]:
        await stop.wait()
        return {"type": "http.disconnect"}

    async with Runtime(Config(run_log_store=ComponentConfig(type="memory"))) as runtime:
        runs = RunsInFlight.for_runtime(runtime)
        writer = await runs.open_run("ticks-1", "ticks", None)
        live = runs.start(pipeline.stream({"n": 200}, run_id="ticks-1", config=runtime), writer)
        live.hold(0)
        outcome = await stream_feed(receive, send, runs.feed("ticks-1", 0), 0, lifecycle=True,
                                    ping_interval=None, primary=live)
        stop.set()
        if outcome is not Outcome.ENDED:
            await runs.cancel(live, "client disconnected")
    ids = [int(line[4:]) for body in bodies for line in body.decode().split("\n")
           if line.startswith("id: ")]
    assert ids == list(range(1, len(ids) + 1))  # each record once, in order
    if trouble == "suspends":
        assert outcome is Outcome.ENDED and len(ids) == 204  # 200 events, lifecycle, the end
        assert b"event: run.completed" in bodies[-2]
        assert len(senders) == 2  # the writer's and the run's task
    else:
        assert outcome is Outcome.GONE and 20 <= len(ids) < 201


async def never_gone() -> dict[str, Any]:
    """An ASGI receive whose client never goes."""
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


async def stream_to(send: Any, pipeline: AsyncPipeline, run_id: str,
                    parameters: dict[str, Any] | None, *, lifecycle: bool) -> tuple[Any, list[Any]]:
    """Start ``pipeline`` as runstream-sse does for the client that asked for it, stream it to
    ``send`` (from this task, as the request's) until its end: the stream's outcome, and the
    run's records in the event log."""
    from runstream_sse._serve import stream_feed

    async with Runtime(Config(run_log_store=ComponentConfig(type="memory"))) as runtime:
        runs = RunsInFlight.for_runtime(runtime)
        writer = await runs.open_run(run_id, pipeline.name, None)
        live = runs.start(pipeline.stream(parameters, run_id=run_id, config=runtime), writer)
        live.hold(0)
        outcome = await stream_feed(never_gone, send, runs.feed(run_id, 0), 0,
                                    lifecycle=lifecycle, ping_interval=None, primary=live)
        records = [r async for b in runtime.event_log.read(run_id) for r in b]
    return outcome, records


async def test_a_burst_goes_to_its_waiting_client_in_few_writes() -> None:
    """The run's task writes a record to the waiting client itself only when it comes some
    time after the last one it wrote: the records of a burst go out batched by the writer,
    not in one write each (which made a fast stream 3x slower)."""
    from runstream_sse._serve import Outcome

    pipeline = AsyncPipeline("burst", [AsyncPythonTask(name="llm", function=burst)])
    bodies: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        bodies.append(message.get("body", b""))

    outcome, _ = await stream_to(send, pipeline, "burst-1", {"n": 5000}, lifecycle=True)
    ids = [int(line[4:]) for body in bodies for line in body.decode().split("\n")
           if line.startswith("id: ")]
    assert outcome is Outcome.ENDED and ids == list(range(1, 5005))
    assert len(bodies) < 500  # batched: 5,004 records in at most a tenth as many writes


async def awkward(n: int) -> AsyncGenerator[dict[str, Any], None]:
    # Text that the JSON must escape for line readers, a lone surrogate, a dict with its own
    # ``step``, non-ASCII text.
    for i in range(n):
        await asyncio.sleep(0)
        yield {"text": f"a\u2028b\x85c\ud800 {i}", "n": i}
        yield {"step": "mine", "text": "é"}


async def test_what_the_run_writes_itself_is_framed_as_the_writer_would(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's task sends each record it takes (no burst: BURST 0) with the writer's shortcut
    for a token after the last one sent; the client gets byte for byte the frames of the run's
    records in the log, a branch's records with their ``step`` (unless the dict has one)."""
    from runstream_sse import _live
    from runstream_sse._encoder import to_bytes
    from runstream_sse._serve import Outcome
    from runstream_sse._wire import frame_record

    monkeypatch.setattr(_live, "BURST", 0.0)
    pipeline = AsyncPipeline("awk", [
        AsyncPythonTask(name="llm", function=awkward),
        Parallel("fan", branches={"a": [AsyncPythonTask(name="x", function=awkward)]}),
    ])
    bodies: list[bytes] = []
    senders: list[asyncio.Task[Any] | None] = []

    async def send(message: dict[str, Any]) -> None:
        bodies.append(message.get("body", b""))
        senders.append(asyncio.current_task())

    me = asyncio.current_task()
    outcome, records = await stream_to(send, pipeline, "awk-1", {"n": 20}, lifecycle=False)
    assert outcome is Outcome.ENDED
    events = [r for r in records if r[2] == "step.event"]
    assert len(events) == 80
    expected = "".join(frame_record("awk-1", r[0], r[2], r[3], r[4]) for r in records
                       if r[2] == "step.event" or r[2] == "run.completed")
    assert b"".join(bodies) == to_bytes(expected)
    assert b'"step": "fan.a.x"' in b"".join(bodies) and b"\\u2028" in b"".join(bodies)
    # Most records went out from the run's own task, one write each.
    from_run = sum(1 for task in senders if task is not me)
    assert from_run >= 60


async def one_then_wait(gate: asyncio.Event) -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "status", "status": "thinking"}
    await gate.wait()
    yield {"type": "done"}


@pytest.mark.parametrize("lifecycle", [False, True])
async def test_a_runs_first_event_goes_out_from_its_own_task(lifecycle: bool) -> None:
    """run.started and step.started come right before a run's first event. A client that is
    not sent them (no ``lifecycle``) gets that first event from the run's own task, at once,
    not batched with them through the pump's and the writer's tasks; a lifecycle client is
    sent them, and gets the burst batched, as before."""
    from runstream_sse._serve import Outcome

    gate = asyncio.Event()
    pipeline = AsyncPipeline("first", [AsyncPythonTask(
        name="llm", function=lambda: one_then_wait(gate))])
    writes: list[tuple[bytes, asyncio.Task[Any] | None]] = []

    async def send(message: dict[str, Any]) -> None:
        body = message.get("body", b"")
        writes.append((body, asyncio.current_task()))
        if b"thinking" in body:
            gate.set()

    me = asyncio.current_task()
    outcome, _ = await stream_to(send, pipeline, "first-1", None, lifecycle=lifecycle)
    assert outcome is Outcome.ENDED
    first = next((body, task) for body, task in writes if b"thinking" in body)
    if lifecycle:
        assert first[1] is me  # the writer's batch: step.started and the event
        assert first[0].startswith(b"event: step.started\nid: 2\n")
    else:
        assert first[1] is not me and first[0].startswith(b"id: 3\ndata: ")
