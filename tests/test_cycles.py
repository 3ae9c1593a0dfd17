"""A run that is over leaves no reference cycle: its objects are freed by reference counting.

One cycle (an error's traceback holding the frame that holds the error, a task group's
exception group on Python 3.11) keeps the run's frames, task and run log until the cyclic
GC's next full collection, and makes that collection trace them: at a server's pace that is
seconds of runs' memory and a third of a chat's CPU (bench/README.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from runstream import AsyncPipeline, Branch, Map, Parallel, Retry, RunFailedError, Runtime
from runstream.testing import reference_cycles
from runstream_async_python import AsyncPythonTask

NO_WAIT = Retry(max_attempts=2, delay=0.0, max_delay=0.0)


async def chunks() -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "chunk", "text": "a"}


async def boom() -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "chunk", "text": "a"}
    raise RuntimeError("boom")


async def items() -> dict[str, Any]:
    return {"xs": [1, 2, 3]}


async def bad_item(item: int) -> dict[str, Any]:
    if item == 2:
        raise ValueError("bad item")
    return {"y": item}


async def cleanup() -> dict[str, Any]:
    return {"cleaned": True}


def task(name: str, function: Any, **kw: Any) -> AsyncPythonTask:
    return AsyncPythonTask(name=name, function=function, **kw)


PIPELINES = {
    "completed": [task("s", chunks)],
    "a failed step": [task("s", boom)],
    "retries used up": [task("s", boom, retry=NO_WAIT)],
    "a parallel branch failed (fail fast)": [Parallel("fan", branches={
        "a": [task("a", chunks)], "b": [task("b", boom)]})],
    "parallel branches failed (no fail fast)": [Parallel("fan", fail_fast=False, branches={
        "a": [task("a", boom)], "b": [task("b", boom)]})],
    "a map item failed": [task("i", items), Map("m", over="xs", branch=[task("w", bad_item)])],
    "a branch's on_failure ran": [Parallel("fan", branches={
        "a": Branch([task("a", boom)], on_failure=task("c", cleanup))})],
}


@pytest.mark.parametrize("case", list(PIPELINES))
async def test_a_run_that_is_over_leaves_no_reference_cycle(runtime: Runtime,
                                                             case: str) -> None:
    pipeline = AsyncPipeline("cycles", PIPELINES[case])
    with reference_cycles() as cycles:
        try:
            await pipeline.execute(config=runtime)
        except RunFailedError:
            assert case != "completed"
    assert cycles == []


async def test_a_cancelled_run_leaves_no_reference_cycle(runtime: Runtime) -> None:
    started = asyncio.Event()

    async def waits() -> AsyncGenerator[dict[str, Any], None]:
        started.set()
        await asyncio.Event().wait()
        yield {}

    pipeline = AsyncPipeline("cycles", [task("s", waits)])
    with reference_cycles() as cycles:
        handle = pipeline.stream(config=runtime)
        await started.wait()
        await handle.cancel("stop")
        del handle
    assert cycles == []
