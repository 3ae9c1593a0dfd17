"""A fake OpenAI-compatible model server on 127.0.0.1, and fixtures around it.

The server speaks the chat completions streaming wire format (``data: {chunk}`` frames, a usage
chunk when ``stream_options.include_usage`` is set, ``data: [DONE]``). What it answers depends
on the request's ``model``, so one server plays every scenario:

=============  =================================================================
model          answer
=============  =================================================================
text           ``Hello``, ``, ``, ``world``, ``!`` then finish_reason ``stop``
reasoning      two ``reasoning_content`` deltas and one ``reasoning`` delta, then text
tools          two tool calls, their arguments in pieces; finish_reason ``tool_calls``
error-mid      two text deltas, then an error event (``{"error": {...}}``)
slow           ``tok N `` every 20 ms, 500 of them (10 s): for disconnects
stall          the status line, then nothing until the client goes away
burst          3,000 text deltas at once, then nothing until the client goes away
too-long       400 ``context_length_exceeded``
anything else  404 ``model_not_found``
=============  =================================================================

``FakeOpenAI.failures`` is a queue of ``(status, headers)`` answered, one per request, before
any scenario (429 with ``Retry-After``, 503...). A request whose bearer token is not
``FakeOpenAI.api_key`` gets 401, with the token it sent quoted in the message, as OpenAI does.
Every request is recorded with the server's own timestamps (``time.monotonic``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests._server import serve

KEY = "sk-test-0123456789abcdefSECRET"


@dataclass
class Request:
    """One request as the fake server saw it."""

    body: dict[str, Any]
    headers: dict[str, str]
    started_at: float
    frames: int = 0
    finished_at: float | None = None        # when the whole answer was sent
    disconnected_at: float | None = None
    disconnected: threading.Event = field(default_factory=threading.Event)
    streaming: threading.Event = field(default_factory=threading.Event)
    stalled: threading.Event = field(default_factory=threading.Event)


def chunk(model: str, delta: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, Any] | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish,
                                         "logprobs": None}]
    frame: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                             "created": 1_700_000_000, "model": model, "choices": choices}
    if usage is not None:
        frame["usage"] = usage
    return frame


USAGE = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}

TOOL_DELTAS = [
    {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": ""}}]},
    {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]},
    {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]},
    {"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                     "function": {"name": "get_time", "arguments": "{}"}}]},
]


def script(model: str) -> list[dict[str, Any] | str]:
    """The frames of a scenario: chunk dicts, or ``"error"`` for the mid-stream error."""
    role: dict[str, Any] = {"role": "assistant", "content": ""}
    if model == "text":
        deltas = [{"content": t} for t in ("Hello", ", ", "world", "!")]
        return [chunk(model, role), *(chunk(model, d) for d in deltas),
                chunk(model, {}, "stop")]
    if model == "reasoning":
        return [chunk(model, role), chunk(model, {"reasoning_content": "Think"}),
                chunk(model, {"reasoning_content": "ing. "}), chunk(model, {"reasoning": "Done."}),
                chunk(model, {"content": "42"}), chunk(model, {}, "stop")]
    if model == "tools":
        return [chunk(model, {"role": "assistant", "content": None}),
                *(chunk(model, d) for d in TOOL_DELTAS), chunk(model, {}, "tool_calls")]
    if model == "error-mid":
        return [chunk(model, role), chunk(model, {"content": "par"}),
                chunk(model, {"content": "tial"}), "error"]
    raise AssertionError(model)


class FakeOpenAI:
    """The ASGI app of the fake server (see the module docstring)."""

    def __init__(self) -> None:
        self.api_key: str | None = KEY
        self.failures: list[tuple[int, dict[str, str]]] = []
        self.requests: list[Request] = []
        self.arrived = threading.Condition()

    def wait_requests(self, n: int, timeout: float = 10) -> list[Request]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= n, timeout), \
                f"{len(self.requests)} requests arrived, expected {n}"
            return list(self.requests)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        request = Request(json.loads(body or b"{}"), headers, time.monotonic())
        with self.arrived:
            self.requests.append(request)
            self.arrived.notify_all()
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            request.disconnected_at = time.monotonic()
            request.disconnected.set()
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await self._answer(scope, request, send, gone)
        finally:
            if not gone.is_set():
                watcher.cancel()

    async def _error(self, send: Any, status: int, message: str, code: str | None = None,
                     headers: dict[str, str] | None = None) -> None:
        payload = {"error": {"message": message, "type": "invalid_request_error",
                             "param": None, "code": code}}
        raw = json.dumps(payload).encode()
        head = [(b"content-type", b"application/json")]
        head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": raw})

    async def _answer(self, scope: dict[str, Any], request: Request, send: Any,
                      gone: asyncio.Event) -> None:
        body = request.body
        if scope["path"] != "/v1/chat/completions":
            return await self._error(send, 404, f"no route {scope['path']}")
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key is not None and given != self.api_key:
            return await self._error(send, 401, f"Incorrect API key provided: {given}.",
                                     "invalid_api_key")
        if self.failures:
            status, headers = self.failures.pop(0)
            return await self._error(send, status, f"fake failure {status}", None, headers)
        model = body.get("model", "")
        if model == "too-long":
            return await self._error(
                send, 400, "This model's maximum context length is 8192 tokens. However, "
                "your messages resulted in 9001 tokens.", "context_length_exceeded")
        if model not in ("text", "reasoning", "tools", "error-mid", "slow", "stall",
                         "burst"):
            return await self._error(send, 404, f"The model `{model}` does not exist.",
                                     "model_not_found")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        request.streaming.set()

        async def frame(data: str) -> None:
            await send({"type": "http.response.body", "body": f"data: {data}\n\n".encode(),
                        "more_body": True})
            request.frames += 1

        if model == "stall":
            await gone.wait()
            return
        if model == "burst":
            for i in range(3000):
                await frame(json.dumps(chunk(model, {"content": f"b{i} "})))
            request.stalled.set()
            await gone.wait()
            return
        if model == "slow":
            for i in range(500):
                if gone.is_set():
                    return
                await frame(json.dumps(chunk(model, {"content": f"tok {i} "})))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), 0.02)
            frames: list[dict[str, Any] | str] = [chunk(model, {}, "stop")]
        else:
            frames = script(model)
        for item in frames:
            if item == "error":
                await frame(json.dumps({"error": {"message": "upstream model crashed",
                                                  "type": "server_error"}}))
                await send({"type": "http.response.body", "body": b""})
                return
            await frame(json.dumps(item))
        if (body.get("stream_options") or {}).get("include_usage"):
            await frame(json.dumps(chunk(model, usage=USAGE)))
        await frame("[DONE]")
        await send({"type": "http.response.body", "body": b""})
        request.finished_at = time.monotonic()


@dataclass
class Fake:
    """The running fake server: ``app`` (to script it) and ``base_url`` (``.../v1``)."""

    app: FakeOpenAI
    base_url: str


@pytest.fixture
def fake() -> Iterator[Fake]:
    """A fake OpenAI server on a free 127.0.0.1 port, stopped after the test."""
    app = FakeOpenAI()
    with serve(app, lifespan="off") as base:
        yield Fake(app, f"{base}/v1")


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The fake server's key in ``FAKE_OPENAI_KEY`` (the tasks' ``api_key_env``)."""
    monkeypatch.setenv("FAKE_OPENAI_KEY", KEY)
    return KEY


@pytest.fixture
async def runtime() -> Any:
    """A runtime with the memory store and the installed plugins (entry points)."""
    from runstream import ComponentConfig, Config, Runtime

    rt = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    yield rt
    await rt.aclose()
