"""Issue 12 on one process: ``POST /runs/{id}/cancel``, the reconnect grace, run slots and
errors through the event log (real uvicorn)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Header
from fastapi.responses import Response
from httpx_sse import aconnect_sse
from runstream import (
    AsyncPipeline,
    Config,
    EventLogError,
    LoggedRun,
    MemoryEventLog,
    Runtime,
)
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE, OnDisconnect

from tests._server import serve


class FlakyLog(MemoryEventLog):
    """A memory log whose reads fail while ``down`` (an unreachable server)."""

    down: bool = False

    async def get_run(self, run_id: str) -> LoggedRun | None:
        if self.down:
            raise EventLogError("event log at redis://127.0.0.1:1/0 is unreachable")
        return await super().get_run(run_id)


def who(x_user: str | None = Header(None)) -> str | None:
    return x_user


def make_runtime(memory_config: Config, **limits: Any) -> Runtime:
    config = memory_config.model_copy(update={
        "limits": memory_config.limits.model_copy(update=limits)})
    return Runtime(config)


@pytest.fixture
def rt(memory_config: Config) -> Iterator[Runtime]:
    runtime = make_runtime(memory_config)
    yield runtime
    asyncio.run(runtime.aclose())


def make_app(rt: Runtime) -> FastAPI:
    """``GET /chat?key=K&mode=M`` streams a run (owner: the ``X-User`` header) that emits one
    event, then waits for ``POST /finish/K``."""
    sse = SSE(rt, authorize=who)
    gates: dict[str, asyncio.Event] = {}

    async def slow(key: str) -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "started", "key": key}
        await gates.setdefault(key, asyncio.Event()).wait()
        yield {"type": "done", "key": key}

    pipe = AsyncPipeline("slow", [AsyncPythonTask(name="llm", function=slow)])
    app = FastAPI(lifespan=sse.lifespan)
    app.include_router(sse.router())

    @app.get("/chat")
    async def chat(key: str, mode: OnDisconnect = "cancel",
                   x_user: str | None = Header(None)) -> Response:
        return sse.response(pipe, {"key": key}, on_disconnect=mode, owner=x_user)

    @app.post("/finish/{key}")
    async def finish(key: str) -> None:
        gates.setdefault(key, asyncio.Event()).set()

    @app.get("/slots")
    async def slots() -> dict[str, int]:
        return {"in_use": await rt.event_log.slots_in_use()}

    return app


class Stream:
    """One open event stream, read in the background; ``cancel()`` drops the connection."""

    def __init__(self, client: httpx.AsyncClient, url: str, user: str = "alice",
                 **headers: str) -> None:
        self.events: list[tuple[str, Any]] = []
        self.started = asyncio.Event()
        self.run_id: str | None = None
        self.last_id = ""
        self.status: int | None = None
        self.task = asyncio.create_task(self._read(client, url, {"x-user": user, **headers}))

    async def _read(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        async with aconnect_sse(client, "GET", url, headers=headers) as source:
            self.status = source.response.status_code
            self.run_id = source.response.headers.get("x-run-id")
            async for event in source.aiter_sse():
                self.events.append((event.event, json.loads(event.data) if event.data else {}))
                self.last_id = event.id or self.last_id
                self.started.set()
        self.started.set()

    async def drop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def status_of(client: httpx.AsyncClient, run_id: str, within: float = 10.0) -> str:
    """The run's status once it has ended (or ``running`` after ``within`` s)."""
    deadline = time.monotonic() + within
    while True:
        log = await client.get(f"/runs/{run_id}", headers={"x-user": "alice"})
        status = str(log.json()["status"])
        if status != "running" or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("mode", ["cancel", "continue"])
async def test_post_cancel_stops_the_run_for_its_owner_only(rt: Runtime, mode: str) -> None:
    with serve(make_app(rt)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            stream = Stream(client, f"/chat?key=k&mode={mode}")
            await asyncio.wait_for(stream.started.wait(), 10)
            run_id = stream.run_id
            assert run_id is not None
            url = f"/runs/{run_id}/cancel"
            # Another owner, no identity, an unknown run: as if there were no such run.
            assert (await client.post(url, headers={"x-user": "mallory"})).status_code == 404
            assert (await client.post(url)).status_code == 404
            assert (await client.post("/runs/nope/cancel",
                                      headers={"x-user": "alice"})).status_code == 404
            began = time.monotonic()
            answer = await client.post(url, headers={"x-user": "alice"})
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"run_id": run_id, "cancelled": True}
            await asyncio.wait_for(stream.task, 10)
            print(f"cancel to the client's end: {(time.monotonic() - began) * 1000:.1f} ms")
            assert stream.events[-1][0] == "run.cancelled"
            assert stream.events[-1][1]["reason"] == "cancelled by the client"
            assert await status_of(client, run_id) == "cancelled"
            again = await client.post(url, headers={"x-user": "alice"})
            assert again.status_code == 409
            assert "already ended (cancelled)" in again.json()["detail"]


async def test_a_continue_run_whose_client_left_is_cancelled_by_the_endpoint(
        rt: Runtime) -> None:
    with serve(make_app(rt)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            stream = Stream(client, "/chat?key=c&mode=continue")
            await asyncio.wait_for(stream.started.wait(), 10)
            run_id = stream.run_id
            assert run_id is not None
            await stream.drop()
            assert await status_of(client, run_id, within=0.3) == "running"  # it goes on
            answer = await client.post(f"/runs/{run_id}/cancel", headers={"x-user": "alice"})
            assert answer.status_code == 202
            assert await status_of(client, run_id) == "cancelled"
            replay = await client.get(f"/runs/{run_id}/events", headers={"x-user": "alice"})
            assert "event: run.cancelled" in replay.text
            assert "cancelled by the client" in replay.text


async def test_a_client_that_resumes_within_the_grace_keeps_its_run(
        memory_config: Config) -> None:
    rt = make_runtime(memory_config, reconnect_grace=1.0)
    try:
        with serve(make_app(rt)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                stream = Stream(client, "/chat?key=g")
                await asyncio.wait_for(stream.started.wait(), 10)
                run_id = stream.run_id
                assert run_id is not None
                await stream.drop()  # a dropped connection, not a Stop
                resumed = Stream(client, f"/runs/{run_id}/events",
                                 **{"last-event-id": stream.last_id})
                await client.post("/finish/g")
                await asyncio.wait_for(resumed.task, 10)
                assert [e[1].get("type") for e in resumed.events] == ["done", None]
                assert resumed.events[-1][0] == "run.completed"
                assert await status_of(client, run_id) == "completed"
    finally:
        await rt.aclose()


async def test_a_run_nobody_resumes_is_cancelled_once_the_grace_is_over(
        memory_config: Config) -> None:
    grace = 0.5
    rt = make_runtime(memory_config, reconnect_grace=grace)
    try:
        with serve(make_app(rt)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                stream = Stream(client, "/chat?key=n")
                await asyncio.wait_for(stream.started.wait(), 10)
                run_id = stream.run_id
                assert run_id is not None
                left = time.monotonic()
                await stream.drop()
                assert await status_of(client, run_id) == "cancelled"
                waited = time.monotonic() - left
                assert grace * 0.9 <= waited < grace + 5, waited
                log = (await client.get(f"/runs/{run_id}", headers={"x-user": "alice"})).json()
                assert "not resumed within 0.5 s" in log["error"]["message"]
    finally:
        await rt.aclose()


async def test_with_no_grace_a_dropped_client_cancels_its_run_at_once(rt: Runtime) -> None:
    assert rt.reconnect_grace == 0  # the default with the memory event log
    with serve(make_app(rt)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            stream = Stream(client, "/chat?key=z")
            await asyncio.wait_for(stream.started.wait(), 10)
            assert stream.run_id is not None
            await stream.drop()
            assert await status_of(client, stream.run_id, within=5) == "cancelled"


async def test_run_slots_are_taken_and_freed_through_the_event_log(
        memory_config: Config) -> None:
    rt = make_runtime(memory_config, max_concurrent_runs=2)
    try:
        with serve(make_app(rt)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                stream = Stream(client, "/chat?key=s")
                await asyncio.wait_for(stream.started.wait(), 10)
                assert (await client.get("/slots")).json() == {"in_use": 1}
                # A slot taken by another user of the log (another process, with a shared
                # log) counts: the limit is full.
                assert await rt.event_log.acquire_slot("elsewhere", 2)
                refused = await client.get("/chat?key=t", headers={"x-user": "alice"})
                assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
                await rt.event_log.release_slot("elsewhere")
                await client.post("/finish/s")
                await asyncio.wait_for(stream.task, 10)
                assert stream.events[-1][0] == "run.completed"
                assert (await client.get("/slots")).json() == {"in_use": 0}
    finally:
        await rt.aclose()


async def test_an_event_log_that_fails_answers_503_with_retry_after(
        memory_config: Config) -> None:
    rt = Runtime(memory_config)
    flaky = FlakyLog()
    rt.event_log = flaky
    try:
        with serve(make_app(rt)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                stream = Stream(client, "/chat?key=f")
                await asyncio.wait_for(stream.started.wait(), 10)
                run_id = stream.run_id
                flaky.down = True
                alice = {"x-user": "alice"}
                for method, url in [("GET", f"/runs/{run_id}/events"),
                                    ("POST", f"/runs/{run_id}/cancel")]:
                    answer = await client.request(method, url, headers=alice)
                    assert answer.status_code == 503, (url, answer.text)
                    assert answer.headers["retry-after"] == "1"
                    assert "redis://127.0.0.1:1/0 is unreachable" in answer.json()["detail"]
                flaky.down = False
                # The run and its own client never noticed.
                await client.post("/finish/f")
                await asyncio.wait_for(stream.task, 10)
                assert [e[0] for e in stream.events] == ["message", "message", "run.completed"]
    finally:
        await rt.aclose()
