"""Faults inside tasks: timeouts, tasks that ignore cancellation, oversized events."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    Limits,
    RunFailedError,
    Runtime,
    StepTimeoutError,
)
from runstream._retry import Retry
from runstream.testing import make_runtime, memory_config
from runstream_async_python import AsyncPythonTask, PythonTask


def runtime_with(**limits: Any) -> Runtime:
    return make_runtime(config=memory_config(limits=Limits(**limits)), entry_points=True)


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
    gone = asyncio.Event()
    emitted_late = []

    async def stubborn() -> AsyncGenerator[dict[str, Any], None]:
        try:
            yield {"type": "chunk", "text": "first"}
            while True:
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    await release.wait()  # ignores cancellation until the test lets go
                    emitted_late.append(True)
                    yield {"type": "chunk", "text": "too late"}
                    return
        finally:
            gone.set()

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
    await asyncio.wait_for(gone.wait(), 5)  # the abandoned task has run to its end
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
    closed = threading.Event()

    def blocked():  # type: ignore[no-untyped-def]
        try:
            yield {"type": "chunk", "n": 0}
            release.wait(10)
            resumed.set()
            yield {"type": "chunk", "n": 1}
        finally:
            closed.set()

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
    # Joined: the thread has passed its n=1 (an emit would have blocked it until delivered) and
    # closed the generator; closing the runtime drains anything still on its way to the sink.
    assert await asyncio.to_thread(closed.wait, 5)
    await runtime.aclose()
    # The thread's later event was dropped: nobody (stream or sink) got n=1.
    delivered = [e.data for e in sink.events if e.type == "step.event"]
    assert delivered == [{"type": "chunk", "n": 0}]
    assert sink.events[-1].type == "run.cancelled"


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


async def test_by_default_an_event_over_1_mib_fails_its_step(runtime: Runtime) -> None:
    too_big = {"type": "file", "content": "x" * (1024 * 1024)}

    async def huge() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "chunk", "text": "small"}
        yield too_big
        yield {"type": "chunk", "text": "never sent"}

    p = AsyncPipeline("huge", [AsyncPythonTask(name="huge", function=huge)])
    got: list[Any] = []
    with pytest.raises(RunFailedError) as info:
        async for e in p.execute_streaming(config=runtime):
            got.append(e)
    assert got == [{"type": "chunk", "text": "small"}]
    assert info.value.error_type == "TaskError"
    size = len(json.dumps(too_big))
    assert (f"step 'huge' emitted an event of {size} bytes, over the limit of 1048576 "
            "(limits.max_event_bytes)") in info.value.message


def _sized(make: Any, target: int) -> dict[str, Any]:
    """The event ``make(n)`` with the largest ``n`` whose JSON is at most ``target`` bytes."""
    lo, hi = 0, target
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(json.dumps(make(mid), ensure_ascii=False).encode()) <= target:
            lo = mid
        else:
            hi = mid - 1
    event: dict[str, Any] = make(lo)
    return event


#: Events whose JSON is far from what they look like: the estimate is only a first look.
NEAR_LIMIT = {
    "non-ASCII text": lambda n: {"text": "€" * n},
    "astral characters": lambda n: {"text": "😀" * n},
    "escaped control characters": lambda n: {"text": "\x01" * n},
    "nested lists of small ints": lambda n: {"rows": [[0, 1, 2]] * n},
    "ints with many digits": lambda n: {"ints": [10 ** 300] * n},
}


@pytest.mark.parametrize("make", NEAR_LIMIT.values(), ids=NEAR_LIMIT)
async def test_an_event_near_the_limit_is_measured_exactly(make: Any) -> None:
    limit = 100_000
    runtime = runtime_with(max_event_bytes=limit)
    fits = _sized(make, limit)
    over = _sized(make, limit + 400)
    assert len(json.dumps(over, ensure_ascii=False).encode()) > limit

    def task_of(event: dict[str, Any]) -> Any:
        async def emits() -> AsyncGenerator[dict[str, Any], None]:
            yield event
        return emits

    try:
        ok = AsyncPipeline("ok", [AsyncPythonTask(name="s", function=task_of(fits))])
        assert [e async for e in ok.execute_streaming(config=runtime)] == [fits]  # no false alarm
        bad = AsyncPipeline("bad", [AsyncPythonTask(name="s", function=task_of(over))])
        with pytest.raises(RunFailedError) as info:
            await bad.execute(config=runtime)
        size = len(json.dumps(over, ensure_ascii=False).encode())
        assert f"emitted an event of {size} bytes, over the limit of {limit}" in (
            info.value.message)
    finally:
        await runtime.aclose()


async def test_an_event_that_is_not_json_fails_its_step_with_a_clear_error(
        runtime: Runtime) -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle

    async def emits() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "loop", "data": cycle}

    p = AsyncPipeline("cyc", [AsyncPythonTask(name="s", function=emits)])
    with pytest.raises(RunFailedError) as info:
        await p.execute(config=runtime)
    assert info.value.error_type == "TaskError"
    assert "cannot be written as JSON" in info.value.message
    assert "limits.max_event_bytes" in info.value.message


def test_step_timeout_error_is_a_runstream_error() -> None:
    from runstream import RunstreamError, TaskError

    assert issubclass(StepTimeoutError, TaskError)
    assert issubclass(StepTimeoutError, RunstreamError)


async def test_a_stubborn_branch_inside_a_map_is_bounded_too() -> None:
    from runstream import Map

    runtime = runtime_with(cancel_grace_period=0.2)
    started = asyncio.Event()
    release = asyncio.Event()
    stubborn_done = asyncio.Event()

    async def item_work(item: int) -> int:
        if item == 3:
            started.set()  # the stubborn one is running
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            if item == 3:
                try:
                    await release.wait()  # this one ignores cancellation until let go
                finally:
                    stubborn_done.set()
            raise
        return item

    p = AsyncPipeline("m", [Map(name="m", over="items", max_concurrency=5, branch=[
        AsyncPythonTask(name="w", function=item_work, returns=["r"])], returns=["r"])])
    handle = p.stream({"items": list(range(5))}, run_id="map-stuck", config=runtime)
    await started.wait()
    log = await asyncio.wait_for(handle.cancel("stop"), timeout=5)
    assert log.status == "cancelled"
    assert any("did not stop within 0.2 s" in w for w in log.warnings)
    release.set()
    await asyncio.wait_for(stubborn_done.wait(), 5)  # it ends before the loop closes
    await runtime.aclose()
