"""A client that goes away cancels its run at once, or (on_disconnect="continue") does not."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from runstream import AsyncPipeline, Config, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE

from tests._server import serve

#: The issue's bound: a disconnect cancels the run (its task's ``finally`` ran) within 100 ms.
BOUND = 0.100


class Probe:
    """What the test's task reports across threads: when its ``finally`` ran."""

    def __init__(self) -> None:
        self.finally_at: float | None = None
        self.finished = threading.Event()
        self.gate = threading.Event()


def endless(probe: Probe) -> Any:
    async def task() -> AsyncGenerator[dict[str, Any], None]:
        try:
            for i in range(1_000_000):
                yield {"type": "chunk", "i": i}
                await asyncio.sleep(0.01)
        finally:
            probe.finally_at = time.monotonic()
            probe.finished.set()
    return task


def gated(probe: Probe) -> Any:
    async def task() -> AsyncGenerator[dict[str, Any], None]:
        try:
            yield {"type": "chunk", "i": 0}
            await asyncio.to_thread(probe.gate.wait, 10)
            for i in range(1, 4):
                yield {"type": "chunk", "i": i}
        finally:
            probe.finally_at = time.monotonic()
            probe.finished.set()
    return task


@pytest.fixture
def rt(memory_config: Config) -> Iterator[Runtime]:
    runtime = Runtime(memory_config)
    yield runtime
    asyncio.run(runtime.aclose())


def make_app(rt: Runtime, probe: Probe, task: Any) -> FastAPI:
    sse = SSE(rt)
    app = FastAPI()
    app.include_router(sse.router())
    pipe = AsyncPipeline("chat", [AsyncPythonTask(name="llm", function=task(probe))])

    @app.get("/chat")
    async def chat(on_disconnect: str = "cancel") -> Response:
        return sse.response(pipe, on_disconnect=on_disconnect)  # type: ignore[arg-type]

    @app.get("/tasks")
    async def tasks() -> list[str]:
        """Names of the asyncio tasks alive in the server's loop."""
        return sorted(t.get_name() for t in asyncio.all_tasks())

    return app


def open_stream(base: str, path: str) -> tuple[socket.socket, str]:
    """GET ``path`` on a raw socket; read until the first event. Returns the socket, run id."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    seen = b""
    while b"\ndata: " not in seen:
        chunk = sock.recv(65536)
        assert chunk, "the stream ended before its first event"
        seen += chunk
    head = seen.split(b"\r\n\r\n", 1)[0].decode()
    run_id = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                  if line.lower().startswith("x-run-id:"))
    return sock, run_id


def poll(fn: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


@pytest.mark.parametrize("middleware", [False, True], ids=["plain", "http-middleware"])
def test_disconnect_cancels_the_run_within_100_ms(rt: Runtime, middleware: bool) -> None:
    probe = Probe()
    app = make_app(rt, probe, endless)
    if middleware:  # BaseHTTPMiddleware re-streams the body through a memory stream

        @app.middleware("http")
        async def tag(request: Request, call_next: Any) -> Response:
            response: Response = await call_next(request)
            response.headers["X-Tagged"] = "1"
            return response

    with serve(app) as base, \
            httpx.Client(base_url=base, timeout=10) as client:
        client.get("/tasks")  # warm up
        sock, run_id = open_stream(base, "/chat")
        sock.recv(65536)  # the run is streaming
        closed_at = time.monotonic()
        sock.close()
        assert probe.finished.wait(5), "the task's finally never ran"
        assert probe.finally_at is not None
        elapsed = probe.finally_at - closed_at
        assert elapsed < BOUND, f"cancelled {elapsed * 1000:.1f} ms after the disconnect"
        status = poll(lambda: client.get(f"/runs/{run_id}").json()["status"] == "cancelled")
        assert status, client.get(f"/runs/{run_id}").json()
        leftovers = poll(lambda: not [n for n in client.get("/tasks").json() if run_id in n])
        assert leftovers, client.get("/tasks").json()


def test_continue_lets_the_run_finish_and_keeps_its_events(rt: Runtime) -> None:
    probe = Probe()
    with serve(make_app(rt, probe, gated)) as base, \
            httpx.Client(base_url=base, timeout=10) as client:
        sock, run_id = open_stream(base, "/chat?on_disconnect=continue")
        sock.close()

        def served_no_more() -> bool:  # the response noticed the disconnect and ended
            names = client.get("/tasks").json()
            return not [n for n in names if n.startswith("runstream-sse-w") and run_id in n]

        assert poll(served_no_more)
        # The run goes on without its client (the test holds it at the gate).
        assert not probe.finished.is_set()
        assert client.get(f"/runs/{run_id}").json()["status"] == "running"
        assert f"runstream-run-{run_id}" in client.get("/tasks").json()
        probe.gate.set()
        assert probe.finished.wait(5)
        assert poll(lambda: client.get(f"/runs/{run_id}").json()["status"] == "completed")
        replay = client.get(f"/runs/{run_id}/events")
        assert replay.status_code == 200
        data = [line for line in replay.text.split("\n") if line.startswith("data: {\"type\"")]
        assert data == [f'data: {{"type": "chunk", "i": {i}}}' for i in range(4)]
        assert "event: run.completed" in replay.text
        leftovers = poll(lambda: not [n for n in client.get("/tasks").json() if run_id in n])
        assert leftovers, client.get("/tasks").json()
