"""A shared event log (``shared = True``): two runtimes stand for two processes that share
it. One drives a run (its readers read a local copy; every batch is teed to the shared log),
the other replays, follows and cancels it through the log only. A shared log that fails
mid-run never stops the run nor its own client (real uvicorn)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Sequence
from typing import Any, ClassVar

import httpx
from fastapi import FastAPI
from fastapi.responses import Response
from httpx_sse import aconnect_sse
from pydantic import ConfigDict, Field
from runstream import (
    AsyncPipeline,
    Config,
    EventLogError,
    EventRecord,
    MemoryEventLog,
    Runtime,
)
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE, RunsInFlight, runs_router

from tests._server import serve


class SharedLog(MemoryEventLog):
    """A memory log that says it is shared; its appends fail while ``down``; ``counted`` has
    what every reader count (a reconnect grace's check) answered."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    shared: ClassVar[bool] = True
    down: bool = False
    counted: list[int] = Field(default_factory=list)
    #: Set by a count (the server's loop runs in another thread than the test's).
    checked: threading.Event = Field(default_factory=threading.Event)

    async def readers(self, run_id: str) -> int:
        count = await super().readers(run_id)
        self.counted.append(count)
        self.checked.set()
        return count

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
        if self.down:
            raise EventLogError("event log at redis://127.0.0.1:1/0 is unreachable")
        await super().append(run_id, records)


def two_processes(memory_config: Config) -> tuple[Runtime, Runtime, SharedLog]:
    config = memory_config.model_copy(update={
        "limits": memory_config.limits.model_copy(update={"reconnect_grace": 0})})
    shared = SharedLog()
    a, b = Runtime(config), Runtime(config)
    a.event_log = b.event_log = shared
    return a, b, shared


def make_app(a: Runtime, b: Runtime) -> FastAPI:
    """``GET /chat?key=K`` on "process" A (one event, then waits for ``POST /finish/K``);
    B's runs router at ``/b/runs``."""
    sse = SSE(a)
    gates: dict[str, asyncio.Event] = {}

    async def slow(key: str) -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "started", "key": key}
        await gates.setdefault(key, asyncio.Event()).wait()
        for i in range(3):
            yield {"type": "chunk", "i": i}
        await gates.setdefault(key + "-end", asyncio.Event()).wait()

    pipe = AsyncPipeline("slow", [AsyncPythonTask(name="llm", function=slow)])
    app = FastAPI(lifespan=sse.lifespan)
    app.include_router(sse.router())
    app.include_router(runs_router(b, prefix="/b/runs"))

    @app.get("/chat")
    async def chat(key: str) -> Response:
        return sse.response(pipe, {"key": key})

    @app.post("/finish/{key}")
    async def finish(key: str) -> None:
        gates.setdefault(key, asyncio.Event()).set()

    return app


class Stream:
    def __init__(self, client: httpx.AsyncClient, url: str, **headers: str) -> None:
        self.events: list[tuple[str, Any, str]] = []
        self.seen = asyncio.Event()
        self.run_id: str | None = None
        self.task = asyncio.create_task(self._read(client, url, headers))

    async def _read(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        async with aconnect_sse(client, "GET", url, headers=headers) as source:
            assert source.response.status_code == 200, source.response.status_code
            self.run_id = source.response.headers.get("x-run-id")
            async for event in source.aiter_sse():
                self.events.append((event.event, json.loads(event.data), event.id))
                self.seen.set()

    async def wait_for(self, count: int) -> None:
        while len(self.events) < count:
            self.seen.clear()
            await asyncio.wait_for(self.seen.wait(), 10)


async def test_another_process_replays_follows_and_cancels_the_run(
        memory_config: Config) -> None:
    a, b, shared = two_processes(memory_config)
    try:
        with serve(make_app(a, b)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                stream = Stream(client, "/chat?key=k")
                await stream.wait_for(1)
                run_id = stream.run_id
                assert run_id is not None
                # A's own readers read its local copy; the shared log has the run too.
                local = RunsInFlight.for_runtime(a).local
                assert local is not shared and local.get_now(run_id) is not None
                info = await shared.get_run(run_id)
                assert info is not None and info.status == "running"
                # B follows it from the start, from the shared log only.
                follower = Stream(client, f"/b/runs/{run_id}/events")
                await follower.wait_for(1)
                assert follower.events[0][:2] == stream.events[0][:2]
                await client.post("/finish/k")
                await stream.wait_for(4)
                await follower.wait_for(4)
                assert follower.events == stream.events
                # A Stop on B reaches the run that A drives.
                stop = await client.post(f"/b/runs/{run_id}/cancel")
                assert stop.status_code == 202, stop.text
                await asyncio.wait_for(asyncio.gather(stream.task, follower.task), 10)
                assert stream.events[-1][0] == follower.events[-1][0] == "run.cancelled"
                assert stream.events[-1][1]["reason"] == "cancelled by the client"
                info = await shared.get_run(run_id)
                assert info is not None and info.status == "cancelled"
                assert (await client.post(f"/b/runs/{run_id}/cancel")).status_code == 409
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_shared_log_that_fails_mid_run_never_stops_the_run_nor_its_client(
        memory_config: Config) -> None:
    a, b, shared = two_processes(memory_config)
    try:
        with serve(make_app(a, b)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                stream = Stream(client, "/chat?key=f")
                await stream.wait_for(1)
                run_id = stream.run_id
                shared.down = True  # lost during the run
                await client.post("/finish/f")
                await stream.wait_for(5)  # the warning, then the three chunks
                at = [i for i, e in enumerate(stream.events) if e[0] == "run.warning"]
                assert len(at) == 1 and "replay" in stream.events[at[0]][1]["message"]
                # No id of its own (not one of the run's records): the last id stays.
                assert stream.events[at[0]][2] == stream.events[at[0] - 1][2]
                shared.down = False  # back: what it missed goes out with the next batch
                await client.post("/finish/f-end")
                await asyncio.wait_for(stream.task, 10)
                assert stream.events[-1][0] == "run.completed"
                assert [e[1] for e in stream.events if e[0] == "message"] == [
                    {"type": "started", "key": "f"},
                    *({"type": "chunk", "i": i} for i in range(3))]
                # Another process replays the whole run, nothing lost.
                replay = await client.get(f"/b/runs/{run_id}/events")
                assert "replay.gap" not in replay.text
                assert replay.text.count("\ndata: ") == 5  # 4 messages and the end
                log = (await client.get(f"/runs/{run_id}")).json()
                assert any("shared event log is unavailable" in w for w in log["warnings"])
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_client_that_resumes_on_another_process_within_the_grace_keeps_its_run(
        memory_config: Config) -> None:
    a, b, shared = two_processes(memory_config)
    a.config.limits.reconnect_grace = b.config.limits.reconnect_grace = 1.0
    try:
        with serve(make_app(a, b)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                stream = Stream(client, "/chat?key=r")
                await stream.wait_for(1)
                run_id = stream.run_id
                stream.task.cancel()  # the connection drops on A ...
                await asyncio.gather(stream.task, return_exceptions=True)
                # ... and the client comes back on B, which counts it as a reader in the log.
                resumed = Stream(client, f"/b/runs/{run_id}/events",
                                 **{"last-event-id": stream.events[-1][2]})
                # A's grace is over: it counted B's reader, and the run goes on.
                assert await asyncio.to_thread(shared.checked.wait, 10)
                assert shared.counted == [1]
                await client.post("/finish/r")
                await resumed.wait_for(3)
                await client.post("/finish/r-end")
                await asyncio.wait_for(resumed.task, 10)
                assert [e[1] for e in resumed.events[:-1]] == [
                    {"type": "chunk", "i": i} for i in range(3)]
                assert resumed.events[-1][0] == "run.completed"  # not cancelled by A's grace
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_run_that_ends_while_the_shared_log_is_down_ends_there_once_it_is_back(
        memory_config: Config) -> None:
    a, b, shared = two_processes(memory_config)
    try:
        with serve(make_app(a, b)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                stream = Stream(client, "/chat?key=e")
                await stream.wait_for(1)
                run_id = stream.run_id
                assert run_id is not None
                shared.down = True
                await client.post("/finish/e")
                await client.post("/finish/e-end")
                await asyncio.wait_for(stream.task, 10)
                assert stream.events[-1][0] == "run.completed"  # its client missed nothing
                info = await shared.get_run(run_id)
                assert info is not None and info.status == "running"  # the log missed the end
                shared.down = False
                for _ in range(500):  # retried every second
                    info = await shared.get_run(run_id)
                    if info is not None and info.ended:
                        break
                    await asyncio.sleep(0.02)
                assert info is not None and info.status == "completed"
                replay = await client.get(f"/b/runs/{run_id}/events")
                assert replay.text.count("\ndata: ") == 5 and "replay.gap" not in replay.text
    finally:
        await a.aclose()
        await b.aclose()


async def test_the_shared_log_gets_every_record_before_one_that_cannot_be_json(
        memory_config: Config) -> None:
    """A batch whose last record cannot be JSON: the records before it reach the run's client
    and the local log, and the shared log as well, so that another process's reader sees the
    same events, with no gap before the run's end."""
    # No max_event_bytes: the run does not size events itself, the event log does.
    a, b, _ = two_processes(memory_config.model_copy(update={
        "limits": memory_config.limits.model_copy(update={"max_event_bytes": None})}))

    async def burst() -> AsyncGenerator[dict[str, Any], None]:
        for i in range(200):  # never awaits: one batch for the pump
            yield {"i": i}
        yield {"i": 200, "bad": {(1, 2): "a key JSON cannot hold"}}
        await asyncio.Event().wait()  # until cancelled

    sse = SSE(a)
    pipe = AsyncPipeline("burst", [AsyncPythonTask(name="llm", function=burst)])
    app = FastAPI(lifespan=sse.lifespan)
    app.include_router(runs_router(b, prefix="/b/runs"))

    @app.get("/chat")
    async def chat() -> Response:
        return sse.response(pipe)

    try:
        with serve(app) as base:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                stream = Stream(client, "/chat")
                await asyncio.wait_for(stream.task, 10)
                assert [data["i"] for kind, data, _ in stream.events if kind == "message"
                        ] == list(range(200))
                assert stream.events[-1][0] == "run.cancelled"
                run_id = stream.run_id
                assert run_id is not None
                # Another process replays the run from the shared log alone: the same events.
                replay = Stream(client, f"/b/runs/{run_id}/events")
                await asyncio.wait_for(replay.task, 10)
                assert replay.events == stream.events
                seqs = [int(seq) for _, _, seq in replay.events]
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    finally:
        await a.aclose()
        await b.aclose()
