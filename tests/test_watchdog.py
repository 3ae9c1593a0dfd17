"""A task that blocks the event loop is reported, by step, in the log and on its run's stream
(issue 10, item 8)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response
from httpx_sse import aconnect_sse
from runstream import (
    AsyncPipeline,
    Event,
    Limits,
    Pipeline,
    Runtime,
)
from runstream.testing import make_runtime, memory_config
from runstream_async_python import AsyncPythonTask
from runstream_sse import sse_response

from tests._server import serve

THRESHOLD = 0.2
GUARD = 30.0


def runtime_with(threshold: float | None) -> Runtime:
    return make_runtime(config=memory_config(limits=Limits(loop_block_warning=threshold)),
                        entry_points=True)


def watchdogs() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "runstream-loop-watchdog"}


async def sleepy() -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "chunk", "text": "before"}
    time.sleep(THRESHOLD * 4)  # the mistake: blocking in an async function
    yield {"type": "chunk", "text": "after"}


async def words(n: int = 20) -> AsyncGenerator[dict[str, Any], None]:
    for i in range(n):
        await asyncio.sleep(0.01)
        yield {"type": "chunk", "text": f"w{i}"}


BLOCKING = AsyncPipeline("blocking", [AsyncPythonTask(name="sleepy", function=sleepy)])
POLITE = AsyncPipeline("polite", [AsyncPythonTask(name="talk", function=words)])


async def collect(pipeline: AsyncPipeline, runtime: Runtime) -> list[Event]:
    return [e async for e in pipeline.stream(config=runtime)]


async def test_a_task_that_blocks_the_loop_is_named_in_the_log_and_on_its_stream(
        caplog: pytest.LogCaptureFixture) -> None:
    runtime = runtime_with(THRESHOLD)
    try:
        with caplog.at_level(logging.WARNING, logger="runstream"):
            blocking, polite = await asyncio.wait_for(asyncio.gather(
                collect(BLOCKING, runtime), collect(POLITE, runtime)), GUARD)
        run_id = blocking[0].run_id
        logged = [r.getMessage() for r in caplog.records if "event loop" in r.getMessage()]
        assert len(logged) == 1
        assert f"by step 'sleepy' of run {run_id}" in logged[0]
        assert "in sleepy at " in logged[0] and "test_watchdog.py" in logged[0]
        # Its client sees why its stream froze: a run.warning naming the step (no server path).
        warnings = [e for e in blocking if e.type == "run.warning"]
        assert len(warnings) == 1
        message = warnings[0].data["message"]
        assert "event loop was blocked for" in message and "step 'sleepy' (in sleepy)" in message
        assert "test_watchdog.py" not in message
        assert [e.data["text"] for e in blocking if e.type == "step.event"] == ["before", "after"]
        assert blocking[-1].type == "run.completed"
        assert message in blocking[-1].data["warnings"]
        # The other run froze too, but lost nothing and is not blamed.
        assert [e.data["text"] for e in polite if e.type == "step.event"] == [
            f"w{i}" for i in range(20)]
        assert not [e for e in polite if e.type == "run.warning"]
        assert polite[-1].type == "run.completed" and "warnings" not in polite[-1].data
        # Afterwards, a run on the same loop streams normally.
        again = await asyncio.wait_for(collect(POLITE, runtime), GUARD)
        assert again[-1].type == "run.completed"
        assert not [e for e in again if e.type == "run.warning"]
    finally:
        await runtime.aclose()


async def test_a_well_behaved_run_gets_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    runtime = runtime_with(0.5)

    async def patient() -> AsyncGenerator[dict[str, Any], None]:
        await asyncio.sleep(1.5)  # long, but it awaits: the loop stays free
        yield {"type": "chunk", "text": "done"}

    try:
        with caplog.at_level(logging.WARNING, logger="runstream"):
            events = await asyncio.wait_for(collect(
                AsyncPipeline("patient", [AsyncPythonTask(name="p", function=patient)]),
                runtime), GUARD)
        assert events[-1].type == "run.completed" and "warnings" not in events[-1].data
        assert not [r for r in caplog.records if "event loop" in r.getMessage()]
    finally:
        await runtime.aclose()


async def test_null_threshold_starts_no_watchdog() -> None:
    runtime = runtime_with(None)
    before = watchdogs()
    try:
        handle = POLITE.stream(config=runtime)
        assert watchdogs() == before
        await asyncio.wait_for(handle.result(), GUARD)
    finally:
        await runtime.aclose()


def test_the_watchdog_ends_with_the_runs_of_each_loop() -> None:
    # Pipeline.execute() runs each call in a fresh event loop: no watchdog may outlive it.
    runtime = runtime_with(THRESHOLD)
    before = watchdogs()
    seen: set[threading.Thread] = set()

    async def spy() -> None:
        seen.update(watchdogs() - before)

    pipeline = Pipeline("p", [AsyncPythonTask(name="spy", function=spy)])
    for _ in range(3):
        assert pipeline.execute(config=runtime).status == "completed"
    assert len(seen) >= 1  # one per loop, while it ran
    for thread in seen:
        thread.join(GUARD)
        assert not thread.is_alive()
    assert watchdogs() == before
    asyncio.run(runtime.aclose())


def test_over_http_the_blocked_stream_says_why_and_the_others_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    runtime = runtime_with(THRESHOLD)
    app = FastAPI()

    @app.get("/blocking")
    async def blocking_chat() -> Response:
        return sse_response(BLOCKING, config=runtime, lifecycle=True)

    @app.get("/polite")
    async def polite_chat() -> Response:
        return sse_response(POLITE, config=runtime)

    async def read(client: httpx.AsyncClient, path: str) -> list[tuple[str, Any]]:
        async with aconnect_sse(client, "GET", path) as source:
            return [(e.event, json.loads(e.data)) async for e in source.aiter_sse()]

    async def both(base: str) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        async with httpx.AsyncClient(base_url=base, timeout=GUARD) as client:
            blocked, polite = await asyncio.gather(read(client, "/blocking"),
                                                   read(client, "/polite"))
            return blocked, polite

    try:
        with caplog.at_level(logging.WARNING, logger="runstream"), serve(app) as base:
            blocked, polite = asyncio.run(both(base))
        warnings = [data for event, data in blocked if event == "run.warning"]
        assert len(warnings) == 1 and "by step 'sleepy'" in warnings[0]["message"]
        assert blocked[-1][0] == "run.completed"
        assert blocked[-1][1]["warnings"] == [warnings[0]["message"]]
        assert [d["text"] for e, d in polite if e == "message"] == [f"w{i}" for i in range(20)]
        assert polite[-1][0] == "run.completed" and "warnings" not in polite[-1][1]
        assert any("by step 'sleepy'" in r.getMessage() for r in caplog.records)
    finally:
        asyncio.run(runtime.aclose())
