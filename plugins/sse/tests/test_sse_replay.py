"""runs_router(): run logs, replay with Last-Event-ID / ?after, from the bounded event log."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from httpx_sse import connect_sse
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    MemoryEventLog,
    Runtime,
    StoreError,
)
from runstream_async_python import AsyncPythonTask
from runstream_sse import ANONYMOUS, SSE, runs_router, sse_response

from tests._server import serve


def pipeline(fn: Any) -> AsyncPipeline:
    return AsyncPipeline("chat", [AsyncPythonTask(name="llm", function=fn)])


async def count(n: int) -> AsyncGenerator[dict[str, Any], None]:
    for i in range(n):
        yield {"type": "chunk", "i": i}


@pytest.fixture
def rt(memory_config: Config) -> Iterator[Runtime]:
    runtime = Runtime(memory_config)
    yield runtime
    asyncio.run(runtime.aclose())


def messages(text: str) -> list[dict[str, Any]]:
    """The unnamed events' data of a raw event stream."""
    out = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        if any(line.startswith("data: ") for line in lines) and not any(
                line.startswith("event: ") for line in lines):
            out.append(json.loads(next(li for li in lines if li.startswith("data: "))[6:]))
    return out


def poll(fn: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def test_reconnect_with_last_event_id_gets_exactly_the_missing_events(rt: Runtime) -> None:
    gate = threading.Event()

    async def story() -> AsyncGenerator[dict[str, Any], None]:
        for i in range(4):
            yield {"type": "chunk", "i": i}
        await asyncio.to_thread(gate.wait, 10)
        for i in range(4, 8):
            yield {"type": "chunk", "i": i}

    sse = SSE(rt)
    app = FastAPI()
    app.include_router(sse.router())
    chat = pipeline(story)

    @app.get("/chat")
    async def get_chat() -> Response:
        return sse.response(chat, on_disconnect="continue")

    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        with connect_sse(client, "GET", "/chat") as source:
            run_id = source.response.headers["x-run-id"]
            events = source.iter_sse()
            got = [next(events), next(events)]  # then the connection drops
        assert [json.loads(e.data) for e in got] == [{"type": "chunk", "i": 0},
                                                     {"type": "chunk", "i": 1}]
        last_id = got[-1].id
        # Reconnect while the run waits: the two missed events, then the live tail.
        with connect_sse(client, "GET", f"/runs/{run_id}/events",
                         headers={"Last-Event-ID": last_id}) as source:
            events = source.iter_sse()
            missed = [next(events), next(events)]
            gate.set()
            tail = list(events)
        assert [json.loads(e.data) for e in missed] == [{"type": "chunk", "i": 2},
                                                        {"type": "chunk", "i": 3}]
        assert [json.loads(e.data) for e in tail[:-1]] == [{"type": "chunk", "i": i}
                                                           for i in range(4, 8)]
        assert tail[-1].event == "run.completed"
        assert int(missed[0].id) > int(last_id)
        # After the end: the same request replays the same events, then ends.
        again = client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": last_id})
        assert messages(again.text) == [{"type": "chunk", "i": i} for i in range(2, 8)]
        # ?after=N does the same; the header wins over it.
        after = client.get(f"/runs/{run_id}/events?after={tail[1].id}")
        assert messages(after.text) == [{"type": "chunk", "i": i} for i in range(6, 8)]
        both = client.get(f"/runs/{run_id}/events?after=0", headers={"Last-Event-ID": last_id})
        assert messages(both.text) == messages(again.text)
        # Nothing after the last event: 204, which also stops an EventSource reconnecting.
        done = client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": tail[-1].id})
        assert done.status_code == 204


def test_a_dropped_stream_that_cancelled_its_run_replays_up_to_the_cancel(rt: Runtime) -> None:
    started = threading.Event()

    async def slow() -> AsyncGenerator[dict[str, Any], None]:
        for i in range(3):
            yield {"type": "chunk", "i": i}
        started.set()
        await asyncio.sleep(30)
        yield {"type": "chunk", "i": 99}

    sse = SSE(rt)
    app = FastAPI()
    app.include_router(sse.router())
    chat = pipeline(slow)

    @app.get("/chat")
    async def get_chat() -> Response:
        return sse.response(chat)

    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        with connect_sse(client, "GET", "/chat") as source:
            run_id = source.response.headers["x-run-id"]
            first = next(source.iter_sse())
        assert poll(lambda: client.get(f"/runs/{run_id}").json()["status"] == "cancelled")
        replay = client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": first.id})
    assert messages(replay.text) == [{"type": "chunk", "i": 1}, {"type": "chunk", "i": 2}]
    assert "event: run.cancelled" in replay.text
    assert '"reason": "client disconnected"' in replay.text


def test_malformed_last_event_id_is_a_400_with_a_message(rt: Runtime) -> None:
    sse = SSE(rt)
    app = FastAPI()
    app.include_router(sse.router())
    chat = pipeline(count)

    @app.get("/chat")
    async def get_chat() -> Response:
        return sse.response(chat, {"n": 2})

    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        run_id = client.get("/chat").headers["x-run-id"]
        for bad in ["abc", "-1", "1.5", "9" * 40, "٣".encode()]:
            response = client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": bad})
            assert response.status_code == 400, bad
            assert "Last-Event-ID must be the id of an event" in response.json()["detail"]
        response = client.get(f"/runs/{run_id}/events?after=x")
        assert response.status_code == 400
        assert "after must be the id" in response.json()["detail"]
        # sse_response's own endpoint checks the header the same way.
        response = client.get("/chat", headers={"Last-Event-ID": "nope"})
        assert response.status_code == 400
        assert "Last-Event-ID" in response.json()["detail"]


async def test_run_log_json_and_unknown_runs(rt: Runtime) -> None:
    app = FastAPI()
    app.include_router(runs_router(rt, prefix="/api/runs"))
    chat = pipeline(count)

    @app.get("/chat")
    async def get_chat() -> Response:
        return sse_response(chat, {"n": 3}, config=rt)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        run_id = (await client.get("/chat")).headers["x-run-id"]
        log = (await client.get(f"/api/runs/{run_id}")).json()
        assert (log["run_id"], log["pipeline"], log["status"]) == (run_id, "chat", "completed")
        assert log["steps"]["llm"]["status"] == "completed"
        for path in ["/api/runs/nope", "/api/runs/nope/events", "/api/runs/bad..id"]:
            response = await client.get(path)
            assert response.status_code == 404, path
            assert "no run" in response.json()["detail"]


async def test_a_run_log_store_that_is_down_is_a_503_not_a_500(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Found on PostgreSQL stopped mid-run (tests/test_cluster.py): StoreError escaped as a 500.
    async def down(self: Any, run_id: str) -> Any:
        raise StoreError("run log database postgresql://db:5432/x: cannot connect")

    monkeypatch.setattr(type(rt.store), "get", down)
    app = FastAPI()
    app.include_router(runs_router(rt))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/runs/20261130-035719-3a6faefa095fcf9feec1eca6ec34eb9c")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["detail"] == "the run log store is unavailable; retry shortly"
    assert "cannot connect" in caplog.text  # the details go to the server's log, not the client


def with_event_log(config: Config, **options: Any) -> Runtime:
    return Runtime(config.model_copy(update={"event_log": ComponentConfig(type="memory",
                                                                          **options)}))


async def test_the_event_log_is_bounded_but_the_live_client_misses_nothing(
        memory_config: Config) -> None:
    rt = with_event_log(memory_config, max_events=5)
    app = FastAPI()
    app.include_router(runs_router(rt))
    chat = pipeline(count)

    @app.get("/chat")
    async def get_chat() -> Response:
        return sse_response(chat, {"n": 50}, config=rt)

    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            live = await client.get("/chat")
            assert messages(live.text) == [{"type": "chunk", "i": i} for i in range(50)]
            run_id = live.headers["x-run-id"]
            info = await rt.event_log.get_run(run_id)
            assert info is not None and info.last_seq - info.first_seq + 1 == 5
            again = await client.get(f"/runs/{run_id}/events")
    finally:
        await rt.aclose()
    # The oldest events are gone: the replay says how many, then sends what is kept.
    assert again.text.startswith("event: replay.gap\n")
    gap = json.loads(again.text.split("\n")[1][6:])
    assert gap["after"] == 0 and gap["missed"] == gap["next"] - 1
    assert messages(again.text) == [{"type": "chunk", "i": i} for i in range(47, 50)]
    assert "event: run.completed" in again.text


async def test_ended_runs_are_dropped_after_ttl_and_their_memory_released(
        memory_config: Config) -> None:
    rt = with_event_log(memory_config, ttl=0.05)
    log = rt.event_log
    assert isinstance(log, MemoryEventLog)
    app = FastAPI()
    app.include_router(runs_router(rt))
    chat = pipeline(count)

    @app.get("/chat")
    async def get_chat() -> Response:
        return sse_response(chat, {"n": 3}, config=rt)

    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            run_id = (await client.get("/chat")).headers["x-run-id"]
            for _ in range(500):  # the expiry timer drops it: nobody has to ask (sweep)
                if not log.run_ids():
                    break
                await asyncio.sleep(0.01)
            assert log.run_ids() == [] and log.bytes_kept() == 0
            gone = await client.get(f"/runs/{run_id}/events")
            assert gone.status_code == 410
            assert "no longer kept" in gone.json()["detail"]
    finally:
        await rt.aclose()


async def test_event_logs_are_objects_not_globals(memory_config: Config) -> None:
    """Two apps (two runtimes) never see each other's runs."""
    rt1, rt2 = Runtime(memory_config), Runtime(memory_config)
    try:
        sse1, sse2 = SSE(rt1), SSE(rt2)
        assert rt1.event_log is not rt2.event_log
        app1, app2 = FastAPI(), FastAPI()
        app1.include_router(sse1.router())
        app2.include_router(sse2.router())
        chat = pipeline(count)

        @app1.get("/chat")
        async def get_chat() -> Response:
            return sse1.response(chat, {"n": 1})

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app1),
                                     base_url="http://t") as c1, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app2),
                                  base_url="http://t") as c2:
            run_id = (await c1.get("/chat")).headers["x-run-id"]
            assert (await c1.get(f"/runs/{run_id}/events")).status_code == 200
            assert (await c2.get(f"/runs/{run_id}/events")).status_code == 404
    finally:
        await rt1.aclose()
        await rt2.aclose()


async def test_sse_response_resumes_its_own_run_by_id(rt: Runtime) -> None:
    sse = SSE(rt)
    app = FastAPI()
    chat = pipeline(count)

    @app.get("/chat/{run_id}")
    async def get_chat(run_id: str) -> Response:
        return sse.response(chat, {"n": 4}, run_id=run_id)

    @app.get("/anon")
    async def anon() -> Response:
        return sse.response(chat, {"n": 4})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        first = await client.get("/chat/run-a")
        ids = [line[4:] for line in first.text.split("\n") if line.startswith("id: ")]
        resumed = await client.get("/chat/run-a", headers={"Last-Event-ID": ids[1]})
        assert messages(resumed.text) == [{"type": "chunk", "i": i} for i in range(2, 4)]
        assert len(await rt.store.list_runs()) == 1  # no second run
        # Without a run id there is nothing to resume: 204, no new run.
        assert (await client.get("/anon", headers={"Last-Event-ID": "3"})).status_code == 204
        assert len(await rt.store.list_runs()) == 1
        # The same run id again without Last-Event-ID: reported in-band, not run twice.
        again = await client.get("/chat/run-a")
        assert "event: run.failed" in again.text and "already used" in again.text


async def test_sse_sink_makes_runs_started_elsewhere_followable() -> None:
    config = Config(run_log_store=ComponentConfig(type="memory"),
                    sinks=[ComponentConfig(type="sse")])
    runtime = Runtime(config)
    try:
        app = FastAPI()
        app.include_router(runs_router(runtime))
        chat = pipeline(count)
        # No HTTP involved; the owner a router without `authorize` serves (docs/security.md).
        log = await chat.execute({"n": 3}, config=runtime, owner=ANONYMOUS)
        assert log.status == "completed" and log.warnings == []
        private = await chat.execute({"n": 1}, config=runtime)  # no owner, like a CLI run
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            assert (await client.get(f"/runs/{private.run_id}/events")).status_code == 404
            replay = await client.get(f"/runs/{log.run_id}/events")
            assert messages(replay.text) == [{"type": "chunk", "i": i} for i in range(3)]
            assert "event: run.completed" in replay.text

            # A run streamed by sse_response is published once, not by the sink as well.
            @app.get("/chat")
            async def get_chat() -> Response:
                return sse_response(chat, {"n": 2}, config=runtime)

            streamed = await client.get("/chat")
            run_id = streamed.headers["x-run-id"]
            replay = await client.get(f"/runs/{run_id}/events?lifecycle=true")
            ids = [line for line in replay.text.split("\n") if line.startswith("id: ")]
            assert len(ids) == len(set(ids)) == 6  # started, step, 2 events, step, completed
    finally:
        await runtime.aclose()


async def test_sse_sink_appends_to_the_event_log_without_any_sse_object() -> None:
    # As in a CLI process: no router, no response; the runtime hands the sink its event log.
    config = Config(run_log_store=ComponentConfig(type="memory"),
                    sinks=[ComponentConfig(type="sse")])
    runtime = Runtime(config)
    try:
        log = await pipeline(count).execute({"n": 2}, config=runtime, owner="cli")
        info = await runtime.event_log.get_run(log.run_id)
        records = [r async for batch in runtime.event_log.read(log.run_id) for r in batch]
    finally:
        await runtime.aclose()
    assert log.status == "completed" and log.warnings == []
    assert info is not None and (info.owner, info.status) == ("cli", "completed")
    assert [r[4] for r in records if r[2] == "step.event"] == [
        {"type": "chunk", "i": 0}, {"type": "chunk", "i": 1}]
    assert records[-1][2] == "run.completed"
