"""sse_response() on a real uvicorn server: transcript, failures, headers, HEAD, pings, gzip,
server-side cancel and 100 concurrent streams."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, Response
from httpx_sse import aconnect_sse, connect_sse
from runstream import AsyncPipeline, ComponentConfig, Config, Limits, MemoryEventLog, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE, runs_router, sse_response
from starlette.applications import Starlette
from starlette.routing import Route

from tests._server import serve

PLAN = [
    {"type": "status", "status": "thinking"},
    {"type": "chunk", "text": "I "},
    {"type": "chunk", "text": "think "},
    {"type": "chunk", "text": "so."},
    {"type": "done", "full_text": "I think so."},
]


async def plan_answer() -> AsyncGenerator[dict[str, Any], None]:
    for item in PLAN:
        await asyncio.sleep(0)
        yield item


async def fail_after(n: int) -> AsyncGenerator[dict[str, Any], None]:
    for i in range(n):
        yield {"type": "chunk", "i": i}
    raise ValueError(f"model broke after {n} chunks")


async def tagged(who: int, count: int) -> AsyncGenerator[dict[str, Any], None]:
    for i in range(count):
        await asyncio.sleep(0.001)
        yield {"who": who, "i": i}


def pipeline(fn: Any, name: str = "chat") -> AsyncPipeline:
    return AsyncPipeline(name, [AsyncPythonTask(name="llm", function=fn)])


@pytest.fixture
def rt(memory_config: Config) -> Iterator[Runtime]:
    runtime = Runtime(memory_config)
    yield runtime
    asyncio.run(runtime.aclose())


def data_events(client: httpx.Client, method: str, url: str, **kw: Any) -> tuple[
        httpx.Response, list[tuple[str, str, str]]]:
    with connect_sse(client, method, url, **kw) as source:
        events = [(e.event, e.id, e.data) for e in source.iter_sse()]
        return source.response, events


def test_transcript_data_lines_are_the_task_dicts(rt: Runtime) -> None:
    app = FastAPI()
    app.include_router(runs_router(rt))
    chat = pipeline(plan_answer)

    @app.post("/chat")
    async def post_chat() -> Response:
        return sse_response(chat, {}, config=rt)

    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        with client.stream("POST", "/chat") as response:
            raw = response.read().decode()
        assert response.status_code == 200
        run_id = response.headers["x-run-id"]
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        data_lines = [line for line in raw.split("\n") if line.startswith("data: ")]
        assert data_lines[:5] == [f"data: {json.dumps(d)}" for d in PLAN]
        assert data_lines[0] == 'data: {"type": "status", "status": "thinking"}'
        # The same read by a real SSE parser: unnamed events are the dicts, in order, with ids.
        _, events = data_events(client, "POST", "/chat")
        messages = [e for e in events if e[0] == "message"]
        assert [json.loads(e[2]) for e in messages] == PLAN
        ids = [int(e[1]) for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert events[-1][0] == "run.completed"
        assert json.loads(events[-1][2])["status"] == "completed"
        assert client.get(f"/runs/{run_id}").json()["status"] == "completed"


def test_nan_and_infinity_arrive_as_null_so_every_data_line_is_json(rt: Runtime) -> None:
    async def scores() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "score", "value": float("nan")}
        yield {"type": "score", "value": float("inf"), "range": [float("-inf"), 1.5]}
        yield {"type": "done", "value": 2.0}

    app = FastAPI()
    chat = pipeline(scores)

    @app.get("/chat")
    async def get_chat() -> Response:
        return sse_response(chat, config=rt, lifecycle=True)

    def strict(text: str) -> Any:  # what a browser's JSON.parse accepts
        def reject(name: str) -> Any:
            raise AssertionError(f"{name} on the wire: {text}")
        return json.loads(text, parse_constant=reject)

    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        _, events = data_events(client, "GET", "/chat")
    parsed = [(event, strict(data)) for event, _, data in events]
    assert [d for e, d in parsed if e == "message"] == [
        {"type": "score", "value": None},
        {"type": "score", "value": None, "range": [None, 1.5]},
        {"type": "done", "value": 2.0},
    ]
    assert parsed[-1][0] == "run.completed"


def test_failure_arrives_in_band_after_every_earlier_event(rt: Runtime) -> None:
    app = FastAPI()
    failing = pipeline(fail_after)

    @app.get("/chat")
    async def chat(n: int) -> Response:
        return sse_response(failing, {"n": n}, config=rt)

    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        response, events = data_events(client, "GET", "/chat?n=7")
    assert response.status_code == 200
    assert [json.loads(d) for kind, _, d in events[:-1]] == [{"type": "chunk", "i": i}
                                                             for i in range(7)]
    kind, _, data = events[-1]
    assert kind == "run.failed"
    failure = json.loads(data)
    assert (failure["error_type"], failure["message"], failure["step"]) == (
        "ValueError", "model broke after 7 chunks", "llm")


def test_lifecycle_adds_named_events(rt: Runtime) -> None:
    app = FastAPI()
    chat = pipeline(plan_answer)

    @app.get("/chat")
    async def get_chat() -> Response:
        return sse_response(chat, config=rt, lifecycle=True)

    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        response, events = data_events(client, "GET", "/chat")
    kinds = [kind for kind, _, _ in events]
    assert kinds == ["run.started", "step.started", *["message"] * 5, "step.completed",
                     "run.completed"]
    assert json.loads(events[0][2])["run_id"] == response.headers["x-run-id"]
    assert json.loads(events[1][2])["step"] == "llm"
    assert [int(i) for _, i, _ in events] == list(range(1, 10))


def test_head_answers_without_starting_a_run(rt: Runtime) -> None:
    called = threading.Event()

    async def watched() -> AsyncGenerator[dict[str, Any], None]:
        called.set()
        yield {"type": "chunk"}

    chat = pipeline(watched)

    async def endpoint(request: Request) -> Response:
        return sse_response(chat, config=rt)

    app = Starlette(routes=[Route("/chat", endpoint, methods=["GET", "HEAD"])])
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        response = client.head("/chat")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.content == b""
        assert asyncio.run(rt.store.list_runs()) == []
        assert isinstance(rt.event_log, MemoryEventLog) and rt.event_log.run_ids() == []
        assert not called.is_set()
        # A GET on the same route does start one.
        _, events = data_events(client, "GET", "/chat")
        assert events[-1][0] == "run.completed" and called.is_set()
    assert len(asyncio.run(rt.store.list_runs())) == 1


def test_idle_streams_get_comment_pings(rt: Runtime) -> None:
    gate = threading.Event()

    async def waits() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "status", "status": "waiting"}
        await asyncio.to_thread(gate.wait, 10)
        yield {"type": "done"}

    app = FastAPI()
    slow = pipeline(waits)

    @app.get("/chat")
    async def chat() -> Response:
        return sse_response(slow, config=rt, ping_interval=0.05)

    with serve(app) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /chat HTTP/1.1\r\nHost: test\r\n\r\n")
            seen = b""
            while seen.count(b": ping\n\n") < 2:
                chunk = sock.recv(65536)
                assert chunk, "the server closed the stream before any ping"
                seen += chunk
            gate.set()
            while b"run.completed" not in seen:
                chunk = sock.recv(65536)
                assert chunk
                seen += chunk
    assert seen.index(b": ping") > seen.index(b"waiting")
    assert seen.index(b"run.completed") > seen.index(b'"done"')


@pytest.mark.parametrize("excluded", ["default", "none"])
def test_gzip_middleware_leaves_the_stream_alone(rt: Runtime, excluded: str) -> None:
    app = FastAPI()
    # "none": as GZipMiddleware was before it learnt to skip text/event-stream; the stream's
    # Content-Encoding: identity keeps it away all the same.
    if excluded == "none":
        app.add_middleware(GZipMiddleware, minimum_size=1, exclude_content_types=())
    else:
        app.add_middleware(GZipMiddleware, minimum_size=1)
    chat = pipeline(plan_answer)

    @app.get("/chat")
    async def get_chat() -> Response:
        return sse_response(chat, config=rt)

    @app.get("/big")
    async def big() -> JSONResponse:
        return JSONResponse({"text": "x" * 5000})

    headers = {"Accept-Encoding": "gzip"}
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        control = client.get("/big", headers=headers)
        assert control.headers["content-encoding"] == "gzip"  # the middleware is active
        with client.stream("GET", "/chat", headers=headers) as response:
            raw = b"".join(response.iter_raw())
    assert response.headers.get("content-encoding") != "gzip"
    assert raw[:2] != b"\x1f\x8b"
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(raw)
    assert b'data: {"type": "status", "status": "thinking"}' in raw


def test_server_side_cancel_ends_the_stream_with_run_cancelled(rt: Runtime) -> None:
    gate = threading.Event()

    async def waits() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "chunk", "text": "a"}
        await asyncio.to_thread(gate.wait, 10)
        yield {"type": "chunk", "text": "never"}

    sse = SSE(rt)
    app = FastAPI()
    slow = pipeline(waits)

    @app.get("/chat")
    async def chat() -> Response:
        return sse.response(slow)

    @app.post("/cancel/{run_id}")
    async def cancel(run_id: str) -> dict[str, bool]:
        return {"cancelled": await rt.event_log.cancel(run_id, "stopped by the operator")}

    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client, \
            connect_sse(client, "GET", "/chat") as source:
        events = source.iter_sse()
        first = next(events)
        assert json.loads(first.data) == {"type": "chunk", "text": "a"}
        run_id = source.response.headers["x-run-id"]
        assert client.post(f"/cancel/{run_id}").json() == {"cancelled": True}
        rest = list(events)
        gate.set()
        assert client.post(f"/cancel/{run_id}").json() == {"cancelled": False}
    assert [e.event for e in rest] == ["run.cancelled"]
    assert json.loads(rest[0].data)["reason"] == "stopped by the operator"
    assert asyncio.run(rt.store.get(run_id)).status == "cancelled"


async def test_100_concurrent_streams_each_get_only_their_own_events(rt: Runtime) -> None:
    app = FastAPI()
    sse = SSE(rt)
    fan = pipeline(tagged)

    @app.post("/chat")
    async def chat(request: Request) -> Response:
        body = await request.json()
        return sse.response(fan, {"who": body["who"], "count": 20})

    async def one(client: httpx.AsyncClient, who: int) -> tuple[list[dict[str, Any]], str]:
        async with aconnect_sse(client, "POST", "/chat", json={"who": who}) as source:
            got = [(e.event, e.data) async for e in source.aiter_sse()]
        assert got[-1][0] == "run.completed"
        return [json.loads(d) for kind, d in got if kind == "message"], got[-1][0]

    with serve(app) as base:
        limits = httpx.Limits(max_connections=120, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
            results = await asyncio.wait_for(
                asyncio.gather(*(one(client, who) for who in range(100))), 60)
    for who, (events, _) in enumerate(results):
        assert events == [{"who": who, "i": i} for i in range(20)]


def test_sse_response_validates_its_arguments(rt: Runtime) -> None:
    chat = pipeline(plan_answer)
    with pytest.raises(ValueError, match="on_disconnect"):
        sse_response(chat, config=rt, on_disconnect="stop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ping_interval"):
        sse_response(chat, config=rt, ping_interval=0)
    from runstream import RunIdError

    with pytest.raises(RunIdError, match="invalid run id"):
        sse_response(chat, config=rt, run_id="../etc")
    response = sse_response(chat, config=rt, run_id="my-run-1")
    assert response.run_id == "my-run-1" and response.headers["x-run-id"] == "my-run-1"


async def burst_then_unencodable(n: int, end: bool = False) -> AsyncGenerator[dict[str, Any],
                                                                             None]:
    for i in range(n):  # never awaits: the run emits them all before its client reads one
        yield {"i": i, "pad": "x" * 200}
    if n < 1000:
        yield {"i": n, "not json": {(1, 2): "a key JSON cannot hold"}}
        if not end:
            await asyncio.Event().wait()  # until cancelled


def burst_runtime(**limits: Any) -> Runtime:
    # A replay buffer far smaller than the burst: only the primary's hold keeps it whole.
    return Runtime(Config(run_log_store=ComponentConfig(type="memory"),
                          limits=Limits(**limits),
                          event_log=ComponentConfig(type="memory", max_events=50,
                                                    max_run_bytes=4096)))


def test_a_burst_past_the_replay_buffer_before_the_stream_begins_loses_nothing() -> None:
    """The run appends to the log from its own task as soon as it emits, before its client's
    stream has begun: its client holds it from the first record all the same."""
    runtime = burst_runtime()
    app = FastAPI()
    burst = pipeline(burst_then_unencodable, "burst")

    @app.get("/chat")
    async def chat() -> Response:
        return sse_response(burst, {"n": 3000}, config=runtime)

    try:
        with serve(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            _, events = data_events(client, "GET", "/chat")
    finally:
        asyncio.run(runtime.aclose())
    assert [kind for kind, _, _ in events].count("replay.gap") == 0
    assert [json.loads(d)["i"] for kind, _, d in events if kind == "message"] == list(
        range(3000))
    assert events[-1][0] == "run.completed"


def test_an_event_that_cannot_be_json_ends_the_stream_after_every_earlier_event() -> None:
    # No max_event_bytes: the run does not size events itself, the event log does.
    runtime = burst_runtime(max_event_bytes=None)
    app = FastAPI()
    burst = pipeline(burst_then_unencodable, "burst")

    @app.get("/chat")
    async def chat(end: bool = False) -> Response:
        return sse_response(burst, {"n": 300, "end": end}, config=runtime)

    try:
        with serve(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            _, going = data_events(client, "GET", "/chat")
            # The run ended right after it (its end came in the same batch): how it ended.
            _, ended = data_events(client, "GET", "/chat?end=true")
    finally:
        asyncio.run(runtime.aclose())
    for events in (going, ended):
        assert [json.loads(d)["i"] for kind, _, d in events if kind == "message"] == list(
            range(300))
    kind, _, data = going[-1]
    assert kind == "run.cancelled"
    assert json.loads(data)["reason"].startswith("the event stream failed: TypeError")
    kind, _, data = ended[-1]
    assert kind == "run.completed"
    assert json.loads(data)["warnings"][0].startswith("the event stream failed: TypeError")
