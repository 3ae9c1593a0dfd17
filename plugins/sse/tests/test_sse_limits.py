"""limits.max_concurrent_runs: 503 with Retry-After beyond it, at once, and no run started;
RunsInFlight.shutdown() ends every stream with run.cancelled and refuses new runs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from httpx_sse import aconnect_sse
from runstream import AsyncPipeline, ComponentConfig, Config, Limits, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE, RunsInFlight, sse_response

from tests._server import serve

LIMIT = 3


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory"),
                             limits=Limits(max_concurrent_runs=LIMIT)))
    yield runtime
    asyncio.run(runtime.aclose())


def make_app(rt: Runtime, facade: bool) -> FastAPI:
    """``GET /chat?key=K`` streams a run that emits one event, then waits for
    ``POST /finish/K``; ``GET /state`` tells what the server holds."""
    sse = SSE(rt)
    gates: dict[str, asyncio.Event] = {}

    def gate(key: str) -> asyncio.Event:
        return gates.setdefault(key, asyncio.Event())

    async def slow(key: str) -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "started", "key": key}
        await gate(key).wait()
        yield {"type": "done", "key": key}

    pipe = AsyncPipeline("slow", [AsyncPythonTask(name="llm", function=slow)])
    app = FastAPI()
    app.include_router(sse.router())

    @app.api_route("/chat", methods=["GET", "HEAD"])
    async def chat(key: str) -> Response:
        if facade:
            return sse.response(pipe, {"key": key})
        return sse_response(pipe, {"key": key}, config=rt)

    @app.post("/finish/{key}")
    async def finish(key: str) -> None:
        gate(key).set()

    @app.get("/state")
    async def state() -> dict[str, int]:
        return {"in_flight": len(RunsInFlight.for_runtime(rt)),
                "stored_runs": len(await rt.store.list_runs(limit=1000))}

    @app.post("/shutdown")
    async def shutdown() -> None:
        await sse.shutdown()

    return app


class Stream:
    """One open event stream, read in the background."""

    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.key = key
        self.events: list[tuple[str, Any]] = []
        self.started = asyncio.Event()
        self.status: int | None = None
        self.run_id: str | None = None
        self.task = asyncio.create_task(self._read(client))

    async def _read(self, client: httpx.AsyncClient) -> None:
        async with aconnect_sse(client, "GET", "/chat", params={"key": self.key}) as source:
            self.status = source.response.status_code
            self.run_id = source.response.headers.get("x-run-id")
            async for event in source.aiter_sse():
                self.events.append((event.event, json.loads(event.data)))
                self.started.set()


@pytest.mark.parametrize("facade", [True, False], ids=["SSE", "sse_response"])
async def test_beyond_max_concurrent_runs_is_503_at_once_until_one_finishes(
        rt: Runtime, facade: bool) -> None:
    with serve(make_app(rt, facade)) as base:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=base, timeout=20, limits=limits) as client:
            streams = [Stream(client, f"s{i}") for i in range(LIMIT)]
            await asyncio.wait_for(asyncio.gather(*(s.started.wait() for s in streams)), 10)
            assert (await client.get("/state")).json() == {"in_flight": LIMIT,
                                                           "stored_runs": LIMIT}

            begun = time.monotonic()
            refused = await client.get("/chat", params={"key": "extra"})
            time_to_503 = time.monotonic() - begun
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
            assert refused.headers["content-type"] == "application/json"
            assert "max_concurrent_runs" in refused.json()["detail"]
            assert "x-run-id" not in refused.headers
            assert time_to_503 < 2.0, time_to_503  # at once, never a hang (generous margin)
            print(f"time to 503: {time_to_503 * 1000:.1f} ms")
            # Nothing was started for it.
            assert (await client.get("/state")).json() == {"in_flight": LIMIT,
                                                           "stored_runs": LIMIT}

            # One run finishes: the very next request is accepted.
            await client.post("/finish/s0")
            await asyncio.wait_for(streams[0].task, 10)
            assert streams[0].events[-1][0] == "run.completed"
            again = Stream(client, "again")
            await asyncio.wait_for(again.started.wait(), 10)
            assert again.status == 200

            for key in ("s1", "s2", "again"):
                await client.post(f"/finish/{key}")
            await asyncio.wait_for(asyncio.gather(*(s.task for s in [*streams, again])), 10)
            assert all(s.events[-1][0] == "run.completed" for s in [*streams, again])
            assert (await client.get("/state")).json()["in_flight"] == 0


async def test_a_client_that_leaves_frees_its_slot(rt: Runtime) -> None:
    with serve(make_app(rt, facade=True)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            streams = [Stream(client, f"s{i}") for i in range(LIMIT)]
            await asyncio.wait_for(asyncio.gather(*(s.started.wait() for s in streams)), 10)
            assert (await client.get("/chat", params={"key": "x"})).status_code == 503
            streams[0].task.cancel()  # the client goes away: its run is cancelled
            deadline = time.monotonic() + 5
            while (await client.get("/state")).json()["in_flight"] == LIMIT:
                assert time.monotonic() < deadline, "the slot was not freed"
                await asyncio.sleep(0.01)
            again = Stream(client, "again")
            await asyncio.wait_for(again.started.wait(), 10)
            assert again.status == 200
            for stream in [*streams[1:], again]:
                stream.task.cancel()


async def test_replays_and_head_requests_take_no_slot(rt: Runtime) -> None:
    with serve(make_app(rt, facade=True)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            streams = [Stream(client, f"s{i}") for i in range(LIMIT)]
            await asyncio.wait_for(asyncio.gather(*(s.started.wait() for s in streams)), 10)
            head = await client.head("/chat", params={"key": "h"})
            assert head.status_code == 200  # headers only: it starts nothing
            await client.post("/finish/s0")
            await asyncio.wait_for(streams[0].task, 10)
            again = Stream(client, "again")
            await asyncio.wait_for(again.started.wait(), 10)
            assert (await client.get("/state")).json()["in_flight"] == LIMIT
            # Full again, yet a replay of a run is served: replays start no run.
            replay = await client.get(f"/runs/{streams[0].run_id}/events")
            assert replay.status_code == 200
            assert "event: run.completed" in replay.text
            for stream in [*streams[1:], again]:
                await client.post(f"/finish/{stream.key}")
            await asyncio.wait_for(asyncio.gather(*(s.task for s in [*streams, again])), 10)


async def test_shutdown_cancels_every_run_and_refuses_new_ones(rt: Runtime) -> None:
    with serve(make_app(rt, facade=True)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            streams = [Stream(client, f"s{i}") for i in range(2)]
            await asyncio.wait_for(asyncio.gather(*(s.started.wait() for s in streams)), 10)
            begun = time.monotonic()
            await client.post("/shutdown")
            await asyncio.wait_for(asyncio.gather(*(s.task for s in streams)), 10)
            assert time.monotonic() - begun < 5.0
            for stream in streams:
                assert stream.events[-1] == ("run.cancelled", {
                    "reason": "shutdown", "duration_ms": stream.events[-1][1]["duration_ms"]})
            refused = await client.get("/chat", params={"key": "late"})
            assert refused.status_code == 503
            assert "shutting down" in refused.json()["detail"]
            assert refused.headers["retry-after"] == "1"
            assert (await client.get("/state")).json() == {"in_flight": 0, "stored_runs": 2}


async def test_runs_in_flight_is_one_object_per_runtime(rt: Runtime) -> None:
    runs = RunsInFlight.for_runtime(rt)
    assert RunsInFlight.for_runtime(rt) is runs
    assert rt.state.sse_runs is runs
    assert "sse_runs" not in vars(rt)
    assert SSE(rt).runs is runs
    assert len(runs) == 0 and runs.limit == LIMIT and runs.refusal() is None
    assert "limit=3" in repr(runs)
    with pytest.raises(ValueError, match="send_timeout"):
        SSE(rt, send_timeout=0)
    with pytest.raises(ValueError, match="shutdown_grace_period"):
        SSE(rt, shutdown_grace_period=-1)


async def test_shutdown_reports_a_run_that_ignores_its_cancellation_at_the_deadline() -> None:
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory"),
                             limits=Limits(cancel_grace_period=10)))

    async def stubborn() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "started"}
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(1.5)  # swallows the cancellation for a while, then ends
        yield {"type": "late"}

    sse = SSE(runtime, shutdown_grace_period=0.3)
    pipe = AsyncPipeline("stubborn", [AsyncPythonTask(name="llm", function=stubborn)])
    app = FastAPI()

    @app.get("/chat")
    async def chat() -> Response:
        return sse.response(pipe)

    @app.post("/shutdown")
    async def shutdown() -> None:
        await sse.shutdown()

    try:
        with serve(app) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                events: list[tuple[str, Any]] = []
                started = asyncio.Event()

                async def read() -> None:
                    async with aconnect_sse(client, "GET", "/chat") as source:
                        async for event in source.aiter_sse():
                            events.append((event.event, json.loads(event.data)))
                            started.set()

                reader = asyncio.create_task(read())
                await asyncio.wait_for(started.wait(), 10)
                begun = time.monotonic()
                await client.post("/shutdown")
                await asyncio.wait_for(reader, 10)
                ended = time.monotonic() - begun
            # Made by runstream-sse (the run has not stopped): the fields of runstream's own.
            assert events[-1] == ("run.cancelled", {
                "reason": "shutdown", "duration_ms": events[-1][1]["duration_ms"]})
            assert events[-1][1]["duration_ms"] >= 300
            assert ("message", {"type": "late"}) not in events
            assert ended < 1.2, ended  # the grace period, not the task's 1.5 s
            await asyncio.sleep(1.5)  # let the stubborn task end before the server stops
    finally:
        await runtime.aclose()
