"""Closing or cancelling a stream cancels its run: finally runs, log says cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from runstream import AsyncPipeline, RunCancelledError, Runtime
from runstream_async_python import AsyncPythonTask, PythonTask

from tests._nodes_util import runstream_tasks


class Probe:
    def __init__(self) -> None:
        self.finally_ran = asyncio.Event()
        self.cancelled_seen = False

    async def gen(self) -> AsyncGenerator[dict[str, Any], None]:
        try:
            for i in range(1_000_000):
                yield {"type": "chunk", "i": i}
                await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            self.cancelled_seen = True
            raise
        finally:
            self.finally_ran.set()

    def pipeline(self) -> AsyncPipeline:
        return AsyncPipeline("cancel", [AsyncPythonTask(name="gen", function=self.gen)])


async def assert_cancelled(runtime: Runtime, run_id: str, probe: Probe) -> None:
    assert probe.finally_ran.is_set()
    log = await runtime.store.get(run_id)
    assert log.status == "cancelled"
    assert log.steps["gen"].status == "cancelled"
    assert runstream_tasks() == set()


async def test_closing_execute_streaming_cancels_the_run(runtime: Runtime) -> None:
    probe = Probe()
    agen = probe.pipeline().execute_streaming(run_id="close-1", config=runtime)
    got = [await agen.__anext__() for _ in range(3)]
    assert [g["i"] for g in got] == [0, 1, 2]
    await agen.aclose()
    await assert_cancelled(runtime, "close-1", probe)


async def test_break_out_of_execute_streaming_cancels_the_run(runtime: Runtime) -> None:
    probe = Probe()
    agen = probe.pipeline().execute_streaming(run_id="break-1", config=runtime)
    async for event in agen:
        if event["i"] == 5:
            break
    await agen.aclose()
    await assert_cancelled(runtime, "break-1", probe)


async def test_cancelling_the_consumer_task_cancels_the_run(runtime: Runtime) -> None:
    probe = Probe()
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in probe.pipeline().execute_streaming(run_id="ct-1", config=runtime):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_cancelled(runtime, "ct-1", probe)
    assert probe.cancelled_seen


async def test_run_handle_cancel(runtime: Runtime) -> None:
    probe = Probe()
    handle = probe.pipeline().stream(run_id="h-1", config=runtime)
    seen = []
    async for event in handle:
        seen.append(event.type)
        if event.type == "step.event":
            break
    log = await handle.cancel()
    assert log.status == "cancelled"
    await assert_cancelled(runtime, "h-1", probe)


async def test_a_cancel_while_the_iterator_closes_stops_the_run_once(runtime: Runtime) -> None:
    probe = Probe()
    handle = probe.pipeline().stream(run_id="h-2", config=runtime)
    events = handle.__aiter__()
    while (await events.__anext__()).type != "step.event":
        pass
    logs = await asyncio.gather(handle.cancel("stop button"), events.aclose())
    assert logs[0].status == "cancelled"
    assert logs[0].error is not None and logs[0].error.message == "stop button"
    assert logs[0].warnings == []
    await assert_cancelled(runtime, "h-2", probe)


async def test_handle_cancel_from_outside_ends_stream_with_run_cancelled(
        runtime: Runtime) -> None:
    probe = Probe()
    handle = probe.pipeline().stream(run_id="h-2", config=runtime)
    types: list[str] = []

    async def reader() -> None:
        async for event in handle:
            types.append(event.type)
            if event.type == "step.event" and len(types) == 5:
                asyncio.get_running_loop().call_soon(
                    lambda: asyncio.ensure_future(handle.cancel("user pressed stop")))

    await reader()
    assert types[-1] == "run.cancelled"
    assert (await handle.result()).status == "cancelled"
    await assert_cancelled(runtime, "h-2", probe)


async def test_async_with_handle_cancels_on_exit(runtime: Runtime) -> None:
    probe = Probe()
    async with probe.pipeline().stream(run_id="ctx-1", config=runtime) as handle:
        async for event in handle:
            if event.type == "step.event":
                break
    await assert_cancelled(runtime, "ctx-1", probe)


async def test_cancelled_run_raises_run_cancelled_from_execute_streaming(
        runtime: Runtime) -> None:
    probe = Probe()
    p = probe.pipeline()
    handle_holder: list[Any] = []

    async def gen_then_cancel() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "chunk"}
        raise asyncio.CancelledError  # the task itself gets cancelled

    p = AsyncPipeline("c", [AsyncPythonTask(name="gen", function=gen_then_cancel)])
    with pytest.raises(RunCancelledError):
        [e async for e in p.execute_streaming(run_id="self-c", config=runtime)]
    assert not handle_holder
    assert (await runtime.store.get("self-c")).status == "cancelled"


async def test_sync_thread_task_emits_after_cancel_are_dropped(runtime: Runtime) -> None:
    import threading

    release = threading.Event()
    emitted_after = threading.Event()
    closed = threading.Event()

    def worker():  # type: ignore[no-untyped-def]
        try:
            yield {"type": "chunk", "n": 0}
            release.wait(5)
            yield {"type": "chunk", "n": 1}
            emitted_after.set()
        finally:
            closed.set()

    p = AsyncPipeline("t", [PythonTask(name="gen", function=worker)])
    agen = p.execute_streaming(run_id="thr-1", config=runtime)
    assert await agen.__anext__() == {"type": "chunk", "n": 0}
    await agen.aclose()
    release.set()
    assert await asyncio.to_thread(closed.wait, 5)  # the thread is done with the generator
    log = await runtime.store.get("thr-1")
    assert log.status == "cancelled"
    assert not emitted_after.is_set()  # the generator was closed at its next yield


async def test_reader_cancelling_inside_its_loop_does_not_deadlock(runtime: Runtime) -> None:
    async def flood() -> AsyncGenerator[dict[str, Any], None]:
        for i in range(100_000):  # never awaits: fills the channel while we are inside cancel()
            yield {"i": i}

    p = AsyncPipeline("flood", [AsyncPythonTask(name="gen", function=flood)])
    handle = p.stream(run_id="inline-cancel", config=runtime)
    async for event in handle:
        if event.type == "step.event":
            log = await asyncio.wait_for(handle.cancel("enough"), timeout=10)
            break
    assert log.status == "cancelled"
    assert runstream_tasks() == set()


async def test_the_run_log_keeps_the_cancel_reason(runtime: Runtime) -> None:
    probe = Probe()
    handle = probe.pipeline().stream(run_id="reason-1", config=runtime)
    async for event in handle:
        if event.type == "step.event":
            break
    await handle.cancel("client went away")
    stored = await runtime.store.get("reason-1")
    assert stored.status == "cancelled"
    assert stored.error is not None
    assert (stored.error.type, stored.error.message) == ("Cancelled", "client went away")


@pytest.mark.parametrize("store", ["sqlite", "memory"])
async def test_runs_cancelled_at_once_are_still_recorded_cancelled(
        store: str, tmp_path: Any) -> None:
    from runstream import ComponentConfig, Config

    options = {"path": str(tmp_path / "r.db")} if store == "sqlite" else {}
    runtime = Runtime(Config(run_log_store=ComponentConfig(type=store, **options)))
    try:
        for ticks in range(6):  # cancelled before, while, and just after the start is recorded
            for i in range(5):
                probe = Probe()
                run_id = f"early-{ticks}-{i}"
                handle = probe.pipeline().stream(run_id=run_id, config=runtime)
                for _ in range(ticks):
                    await asyncio.sleep(0)
                log = await handle.cancel("client left early")
                assert log.status == "cancelled"
                stored = await runtime.store.get(run_id)
                assert stored.status == "cancelled", (ticks, i)
                assert stored.error is not None
                assert stored.error.message == "client left early"
        assert runstream_tasks() == set()
    finally:
        await runtime.aclose()
