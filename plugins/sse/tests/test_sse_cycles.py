"""A run streamed over SSE leaves no reference cycle once it is over: the run's objects (its
task, run log, records, ``LiveRun``, ``RunWriter``, the response) are freed by reference
counting, not at the cyclic GC's next full collection (see tests/test_cycles.py). With and
without a shared event log: the tee's notice of a failed shared log is the one callback that
points back at the run (cleared at its end)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from runstream import AsyncPipeline, Config, MemoryEventLog, Runtime
from runstream.testing import reference_cycles
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE, RunsInFlight


class SharedLog(MemoryEventLog):
    """The memory log, saying it is shared (as Redis's): runs' records are teed to it."""

    shared: ClassVar[bool] = True


async def words() -> AsyncGenerator[dict[str, Any], None]:
    for word in ("a", "b", "c"):
        yield {"type": "chunk", "text": word}
        await asyncio.sleep(0)


async def fails() -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "chunk", "text": "a"}
    raise RuntimeError("the model is down")


CHAT = AsyncPipeline("chat", [AsyncPythonTask(name="llm", function=words)])
FAILS = AsyncPipeline("fails", [AsyncPythonTask(name="llm", function=fails)])


def make(shared: bool) -> tuple[FastAPI, Runtime]:
    runtime = Runtime(Config.model_validate({"run_log_store": {"type": "memory"},
                                             "limits": {"reconnect_grace": 0}}))
    if shared:
        runtime.event_log = SharedLog()
    sse = SSE(runtime)
    app = FastAPI()

    @app.get("/chat")
    async def chat() -> Response:
        return sse.response(CHAT)

    @app.get("/fails")
    async def failing() -> Response:
        return sse.response(FAILS)

    @app.get("/completion")
    async def completion() -> Response:
        return sse.completion(CHAT)

    return app, runtime


async def call(app: FastAPI, path: str, *, leave_after_first: bool = False) -> bytes:
    """GET ``path`` on the ASGI app; the client goes after the first body if asked."""
    body: list[bytes] = []
    requested = False
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if leave_after_first or not message.get("more_body", False):
                gone.set()

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"test")],
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}
    await app(scope, receive, send)
    return b"".join(body)


@pytest.mark.parametrize("shared", [False, True], ids=["memory log", "shared log"])
@pytest.mark.parametrize(("path", "ends_with"), [
    ("/chat", b"run.completed"), ("/fails", b"run.failed"), ("/completion", b"chat.completion"),
    ("/chat?leave", b""),
], ids=["completed", "failed", "openai completion", "client gone"])
async def test_a_streamed_run_that_is_over_leaves_no_reference_cycle(
        shared: bool, path: str, ends_with: bytes) -> None:
    app, runtime = make(shared)
    try:
        await call(app, "/chat")  # the first run sets up what every later one shares
        runs = RunsInFlight.for_runtime(runtime)
        with reference_cycles() as cycles:
            body = await call(app, path.split("?")[0], leave_after_first="leave" in path)
            assert ends_with in body
            # The response may return before its run's pump has ended the run in the log, and
            # before the cancellation a client's leaving started has ended.
            await asyncio.gather(*[task for _, task in runs._pumps.values()], *runs._stopping)
            assert len(runs) == 0 and runs.streams == 0
            del body
        assert cycles == []
    finally:
        await runtime.aclose()
