"""``RunsInFlight`` owns the live runs: it makes them, runs and awaits their pump tasks; a
``LiveRun`` starts nothing by itself (issue 11)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

from runstream import AsyncPipeline, ComponentConfig, Config, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_sse import ReplayBuffer, RunsInFlight
from runstream_sse._buffer import RunBuffer
from runstream_sse._live import LiveRun


async def endless() -> AsyncGenerator[dict[str, Any], None]:
    while True:
        yield {"type": "chunk"}
        await asyncio.sleep(0.01)


ENDLESS = AsyncPipeline("endless", [AsyncPythonTask(name="llm", function=endless)])


def test_a_live_run_starts_no_task_when_made() -> None:
    # No event loop here: a constructor that started a task would raise.
    live = LiveRun(object(), RunBuffer("r1", 10))  # type: ignore[arg-type]
    assert not live.buffer.ended


async def test_the_registry_owns_the_pump_and_cancel_awaits_it() -> None:
    async with Runtime(Config(run_log_store=ComponentConfig(type="memory"))) as runtime:
        runs = RunsInFlight.for_runtime(runtime)
        replay = ReplayBuffer.for_runtime(runtime)
        replay._add_canceller(runs)
        buffer = replay._open("owned-1")
        live = runs.start(ENDLESS.stream(run_id="owned-1", config=runtime), buffer)
        assert len(runs) == 1
        while not len(buffer):  # the pump publishes whether or not anyone reads
            await buffer.wait(None)
        assert await replay.cancel("owned-1", "stopped")  # reaches the run through its owner
        assert buffer.ended and live.handle.done()
        assert len(runs) == 0 and runs._pumps == {}  # the pump task ended and was forgotten
        frames, _ = buffer.since(0)
        last = frames[-1]
        assert last[1] == "run.cancelled"
        data = json.loads(last[3].split("data: ", 1)[1])
        assert data["reason"] == "stopped" and "duration_ms" in data
        assert not await replay.cancel("owned-1")  # nothing left to cancel
