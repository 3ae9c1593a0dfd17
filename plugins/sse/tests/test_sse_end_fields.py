"""Terminal events carry the same fields whether runstream or runstream-sse made them:
``duration_ms`` and, when the run log has warnings, ``warnings`` (issue 11)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import Response
from httpx_sse import aconnect_sse
from runstream import AsyncPipeline, ComponentConfig, Config, Limits, Runtime, Sink
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE

from tests._server import serve


class BadSink(Sink):
    """Dropped from every run, which then has a warning in its run log."""

    def for_run(self) -> Sink:
        raise RuntimeError("cannot make a sink for this run")

    async def send(self, event: Any) -> None:  # pragma: no cover - never made
        pass


async def quick() -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "chunk"}


async def endless() -> AsyncGenerator[dict[str, Any], None]:
    while True:
        yield {"type": "chunk"}
        await asyncio.sleep(0.01)


STUBBORN_DONE = threading.Event()


async def stubborn() -> AsyncGenerator[dict[str, Any], None]:
    try:
        yield {"type": "chunk"}
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(1.0)  # ignores its cancellation past the shutdown's deadline
    finally:
        STUBBORN_DONE.set()


def pipe(name: str, function: Any) -> AsyncPipeline:
    return AsyncPipeline(name, [AsyncPythonTask(name="llm", function=function)])


async def _first_then_leave(client: httpx.AsyncClient, url: str) -> None:
    async with aconnect_sse(client, "GET", url) as source:
        async for _event in source.aiter_sse():
            return


async def _last(client: httpx.AsyncClient, url: str, started: asyncio.Event | None = None
                ) -> tuple[str, dict[str, Any]]:
    last: tuple[str, dict[str, Any]] = ("", {})
    async with aconnect_sse(client, "GET", url) as source:
        async for event in source.aiter_sse():
            last = (event.event, json.loads(event.data))
            if started is not None:
                started.set()
    return last


async def test_terminal_events_have_the_same_fields_wherever_they_are_made() -> None:
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory"),
                             limits=Limits(cancel_grace_period=10)), sinks=[BadSink()])
    sse = SSE(runtime, shutdown_grace_period=0.3)
    app = FastAPI()
    app.include_router(sse.router())

    @app.get("/quick")
    async def run_quick() -> Response:
        return sse.response(pipe("quick", quick), run_id="quick-1")

    @app.get("/endless")
    async def run_endless() -> Response:
        return sse.response(pipe("endless", endless), run_id="gone-1")

    @app.get("/stubborn")
    async def run_stubborn() -> Response:
        return sse.response(pipe("stubborn", stubborn), run_id="shut-1")

    @app.post("/shutdown")
    async def shutdown() -> None:
        await sse.shutdown()

    try:
        with serve(app) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                normal = await _last(client, "/quick")
                # The client leaves: the run is cancelled; its end is replayed from the buffer.
                await _first_then_leave(client, "/endless")
                disconnected = await asyncio.wait_for(_last(client, "/runs/gone-1/events"), 10)
                started = asyncio.Event()
                reader = asyncio.create_task(_last(client, "/stubborn", started))
                await asyncio.wait_for(started.wait(), 10)
                await client.post("/shutdown")
                shut = await asyncio.wait_for(reader, 10)
            assert await asyncio.to_thread(STUBBORN_DONE.wait, 10)
    finally:
        await runtime.aclose()
    assert normal[0] == "run.completed"
    assert disconnected == ("run.cancelled", {**disconnected[1], "reason": "client disconnected"})
    assert shut == ("run.cancelled", {**shut[1], "reason": "shutdown"})
    common = {"duration_ms", "warnings"}
    assert set(normal[1]) == common | {"status"}
    assert set(disconnected[1]) == common | {"reason"}
    assert set(shut[1]) == common | {"reason"}
    for _type, data in (normal, disconnected, shut):
        assert any("BadSink" in w for w in data["warnings"])
        assert data["duration_ms"] >= 0
