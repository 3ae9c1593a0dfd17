"""How a stream stops: the writer runs in the request's task and the disconnect watcher in a
task of its own (``_serve.stream_feed``). A client that goes, a shutdown that cuts a stuck
stream, and a cancellation from outside (the server's) each end it as they should: the first
two as a finished response (the run is cancelled), the last as a cancelled task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from runstream import AsyncPipeline, ComponentConfig, Config, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE
from runstream_sse._fastpath import no_context


async def endless() -> AsyncGenerator[dict[str, Any], None]:
    while True:
        yield {"type": "chunk"}
        await asyncio.sleep(0.005)


ENDLESS = AsyncPipeline("endless", [AsyncPythonTask(name="llm", function=endless)])


class Client:
    """An ASGI client of ``GET /chat``: ``send`` blocks once ``stuck`` (a client that stopped
    reading: the server's send waits for room); ``disconnect()`` is the client going."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.bodies: list[bytes] = []
        self.more = True
        self.stuck = False
        self.first = asyncio.Event()
        self.in_send = asyncio.Event()
        self.gone = asyncio.Event()
        self.requested = False

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            if self.stuck:
                self.in_send.set()
                await asyncio.Event().wait()  # no room, ever
            self.bodies.append(message.get("body", b""))
            self.more = message.get("more_body", False)
            self.first.set()

    async def __call__(self) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/chat", "raw_path": b"/chat",
                 "query_string": b"", "root_path": "", "headers": [(b"host", b"test")],
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}
        await self.app(scope, self.receive, self.send)


def make(shutdown_grace_period: float = 5.0, send_timeout: float | None = None
         ) -> tuple[FastAPI, SSE, Runtime, list[Any]]:
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    sse = SSE(runtime, shutdown_grace_period=shutdown_grace_period, send_timeout=send_timeout)
    app = FastAPI()
    handles: list[Any] = []

    @app.get("/chat")
    async def chat() -> Response:
        response = sse.response(ENDLESS)
        handles.append(response)
        return response

    return app, sse, runtime, handles


async def run_log_status(runtime: Runtime, run_id: str) -> str:
    for _ in range(500):
        log = await runtime.store.get(run_id)
        if log is not None and log.status != "running":
            return str(log.status)
        await asyncio.sleep(0.01)
    raise AssertionError("the run did not end")


async def test_a_client_that_goes_ends_the_response_and_cancels_its_run() -> None:
    app, sse, runtime, handles = make()
    client = Client(app)
    try:
        request = asyncio.create_task(client())
        await asyncio.wait_for(client.first.wait(), 10)
        client.gone.set()
        await asyncio.wait_for(request, 10)  # returns: no CancelledError out of the app
        assert not request.cancelled()
        assert await run_log_status(runtime, handles[0].run_id) == "cancelled"
        assert sse.runs.streams == 0
        # The context of runstream-sse's own callbacks (_fastpath) is shared: none sets a
        # context variable in it.
        assert len(no_context()) == 0
    finally:
        await runtime.aclose()


async def test_a_shutdown_cuts_a_stuck_stream_at_its_deadline() -> None:
    app, sse, runtime, _ = make(shutdown_grace_period=0.2)
    client = Client(app)
    try:
        request = asyncio.create_task(client())
        await asyncio.wait_for(client.first.wait(), 10)
        client.stuck = True  # the client stops reading: the writer waits in send
        await asyncio.wait_for(client.in_send.wait(), 10)
        assert sse.runs.streams == 1
        await asyncio.wait_for(sse.shutdown(), 10)  # does not wait for the stuck send
        await asyncio.wait_for(request, 10)
        assert not request.cancelled()
        assert client.more  # cut: never completed as a whole response
        assert sse.runs.streams == 0
    finally:
        await runtime.aclose()


async def test_a_cancellation_from_outside_cancels_the_request() -> None:
    app, sse, runtime, handles = make()
    client = Client(app)
    try:
        request = asyncio.create_task(client())
        await asyncio.wait_for(client.first.wait(), 10)
        request.cancel()  # the server's, not the client's: it is not swallowed
        done, _ = await asyncio.wait({request}, timeout=10)
        assert done and request.cancelled()
        assert await run_log_status(runtime, handles[0].run_id) == "cancelled"
        assert sse.runs.streams == 0
    finally:
        await runtime.aclose()
