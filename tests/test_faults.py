"""Faults inside tasks: timeouts, tasks that ignore cancellation, oversized events."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    Limits,
    RunFailedError,
    Runtime,
    StepTimeoutError,
)
from runstream._retry import Retry
from runstream_async_python import AsyncPythonTask, PythonTask


def runtime_with(**limits: Any) -> Runtime:
    return Runtime(Config(run_log_store=ComponentConfig(type="memory"), limits=Limits(**limits)))


async def test_a_step_past_its_timeout_fails_in_band(runtime: Runtime) -> None:
    finally_ran = asyncio.Event()

    async def hangs() -> AsyncGenerator[dict[str, Any], None]:
        try:
            yield {"type": "chunk", "text": "partial"}
            await asyncio.sleep(60)
        finally:
            finally_ran.set()

    p = AsyncPipeline("t", [AsyncPythonTask(name="slow", function=hangs, timeout=0.2)])
    handle = p.stream(run_id="timeout-1", config=runtime)
    events = [e async for e in handle]
    assert [e.type for e in events][-3:] == ["step.event", "step.failed", "run.failed"]
    assert events[-1].data["error_type"] == "StepTimeoutError"
    assert "did not finish within its timeout of 0.2 s" in events[-1].data["message"]
    assert finally_ran.is_set()
    log = await handle.result()
    assert log.status == "failed" and log.steps["slow"].status == "failed"


async def test_timeouts_can_be_retried(runtime: Runtime) -> None:
    calls = 0

    async def slow_first() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(60)
        return "ok"

    task = AsyncPythonTask(name="s", function=slow_first, returns=["r"], timeout=0.1,
                           retry=Retry(max_attempts=2, delay=0, retry_on=["StepTimeoutError"]))
    log = await AsyncPipeline("t", [task]).execute(config=runtime)
    assert [a.status for a in log.steps["s"].attempts] == ["failed", "completed"]
    assert "StepTimeoutError" in (log.steps["s"].attempts[0].message or "")


async def test_a_task_that_ignores_cancellation_is_cut_off_after_the_grace_period() -> None:
    runtime = runtime_with(cancel_grace_period=0.2)
    release = asyncio.Event()
    emitted_late = []

    async def stubborn() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "chunk", "text": "first"}
        while True:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                await release.wait()  # ignores cancellation until the test lets go
                emitted_late.append(True)
                yield {"type": "chunk", "text": "too late"}
                return

    next_step_ran = []

    async def after() -> None:
        next_step_ran.append(True)

    p = AsyncPipeline("s", [AsyncPythonTask(name="stubborn", function=stubborn),
                            AsyncPythonTask(name="after", function=after)])
    handle = p.stream(run_id="stubborn-1", config=runtime)
    seen: list[Any] = []
    async for event in handle:
        seen.append(event)
        if event.type == "step.event":
            started = time.monotonic()
            log = await handle.cancel("stop")
            took = time.monotonic() - started
            break
    assert log.status == "cancelled"
    assert took < 5  # bounded by the grace period, not by the task
    assert any("did not stop within 0.2 s" in w for w in log.warnings)
    release.set()
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert emitted_late == [True]  # it did run on, but nothing reached the stream
    assert next_step_ran == []  # and the pipeline did not go on without its run
    assert (await runtime.store.get("stubborn-1")).status == "cancelled"
    assert [e.data for e in seen if e.type == "step.event"] == [{"type": "chunk",
                                                                "text": "first"}]
    await runtime.aclose()


async def test_sync_task_blocked_in_its_thread_is_reported_cancelled() -> None:
    from runstream.testing import CollectingSink, make_runtime

    sink = CollectingSink()
    runtime = make_runtime(sinks=[sink], entry_points=True)
    release = threading.Event()
    resumed = threading.Event()

    def blocked():  # type: ignore[no-untyped-def]
        yield {"type": "chunk", "n": 0}
        release.wait(10)
        resumed.set()
        yield {"type": "chunk", "n": 1}

    p = AsyncPipeline("b", [PythonTask(name="blocked", function=blocked)])
    handle = p.stream(run_id="thread-1", config=runtime)
    async for event in handle:
        if event.type == "step.event":
            break
    log = await handle.cancel()
    assert log.status == "cancelled"  # at once, although the thread is still blocked
    assert log.steps["blocked"].attempts[0].status == "cancelled"
    release.set()
    assert await asyncio.to_thread(resumed.wait, 5)
    await asyncio.sleep(0.2)
    # The thread's later event was dropped: nobody (stream or sink) got n=1.
    delivered = [e.data for e in sink.events if e.type == "step.event"]
    assert delivered == [{"type": "chunk", "n": 0}]
    assert sink.events[-1].type == "run.cancelled"
    await runtime.aclose()


async def test_event_over_the_size_cap_fails_the_step() -> None:
    runtime = runtime_with(max_event_bytes=1000)

    async def big() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "chunk", "text": "small"}
        yield {"type": "chunk", "text": "é" * 600}  # 1,200 bytes of UTF-8

    p = AsyncPipeline("big", [AsyncPythonTask(name="big", function=big)])
    got: list[Any] = []
    with pytest.raises(RunFailedError) as info:
        async for e in p.execute_streaming(config=runtime):
            got.append(e)
    assert got == [{"type": "chunk", "text": "small"}]
    assert info.value.error_type == "TaskError"
    assert "over the limit of 1000 (limits.max_event_bytes)" in info.value.message
    await runtime.aclose()


def test_step_timeout_error_is_a_runstream_error() -> None:
    from runstream import RunstreamError, TaskError

    assert issubclass(StepTimeoutError, TaskError)
    assert issubclass(StepTimeoutError, RunstreamError)


async def test_a_stubborn_branch_inside_a_map_is_bounded_too() -> None:
    from runstream import Map

    runtime = runtime_with(cancel_grace_period=0.2)
    started = asyncio.Event()

    async def item_work(item: int) -> int:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            if item == 3:
                await asyncio.sleep(1)  # this one ignores cancellation for a while
            raise
        return item

    p = AsyncPipeline("m", [Map(name="m", over="items", max_concurrency=5, branch=[
        AsyncPythonTask(name="w", function=item_work, returns=["r"])], returns=["r"])])
    handle = p.stream({"items": list(range(5))}, run_id="map-stuck", config=runtime)
    await started.wait()
    log = await asyncio.wait_for(handle.cancel("stop"), timeout=5)
    assert log.status == "cancelled"
    assert any("did not stop within 0.2 s" in w for w in log.warnings)
    await asyncio.sleep(1.2)  # let the stubborn branch finish before the loop closes
    await runtime.aclose()
