"""The Task base class: custom task types, async or sync (run in a worker thread)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    RunFailedError,
    Runtime,
    SyncTaskContext,
    Task,
    TaskContext,
)


class Countdown(Task):
    """An async task type with an option of its own."""

    start: int = 3

    async def execute(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        label = ctx.parameter("label")
        for i in range(self.start, 0, -1):
            await ctx.emit({"type": "tick", "n": i, "label": label})
        return {"liftoff": f"{label}!"}


class SyncOnly(Task):
    """A task type with only a sync implementation: runs in a worker thread."""

    def run(self, ctx: SyncTaskContext) -> Mapping[str, Any] | None:
        ctx.emit({"type": "thread", "name": threading.current_thread().name,
                  "liftoff": ctx.parameters["liftoff"]})
        return {"done_in": threading.current_thread().name}


class Neither(Task):
    pass


async def test_custom_async_and_sync_task_types(runtime: Runtime) -> None:
    p = AsyncPipeline("custom", [Countdown(name="count", start=2, returns=["liftoff"]),
                                 SyncOnly(name="sync", returns=["done_in"])])
    events = [e async for e in p.execute_streaming({"label": "go"}, config=runtime)]
    assert events[:2] == [{"type": "tick", "n": 2, "label": "go"},
                          {"type": "tick", "n": 1, "label": "go"}]
    assert events[2]["liftoff"] == "go!"
    assert events[2]["name"] != threading.current_thread().name


async def test_missing_parameter_in_a_custom_task(runtime: Runtime) -> None:
    p = AsyncPipeline("custom", [Countdown(name="count")])
    with pytest.raises(RunFailedError, match="needs parameter 'label'"):
        await p.execute(config=runtime)


async def test_task_type_implementing_nothing_fails_the_step(runtime: Runtime) -> None:
    with pytest.raises(RunFailedError, match="implements neither execute\\(\\) nor run\\(\\)"):
        await AsyncPipeline("n", [Neither(name="n")]).execute(config=runtime)


def test_task_options_are_validated() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="start"):
        Countdown(name="c", start="soon")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Countdown(name="c", colour="red")  # type: ignore[call-arg]
