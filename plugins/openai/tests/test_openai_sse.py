"""Through runstream-sse on a real uvicorn: a client that disconnects makes the model server
see its connection closed (the issue asks for 100 ms; the bound here is generous, and the
measured gap is printed)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from runstream import AsyncPipeline, ComponentConfig, Config, Runtime
from runstream_openai import OpenAIChatTask
from runstream_sse import SSE

from tests._server import serve

from .conftest import Fake

#: Fails if the upstream stream is left open (the fake would stream for 10 s more).
BOUND = 1.0


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    yield runtime
    asyncio.run(runtime.aclose())


def app_for(rt: Runtime, fake: Fake) -> FastAPI:
    sse = SSE(rt)
    app = FastAPI()
    app.include_router(sse.router())
    pipeline = AsyncPipeline("chat", [OpenAIChatTask(
        name="llm", model="slow", base_url=fake.base_url, api_key_env="FAKE_OPENAI_KEY")])

    @app.get("/chat")
    async def chat() -> Response:
        return sse.response(pipeline, parameters={"prompt": "hi"})

    return app


def test_sse_disconnect_closes_the_model_servers_connection(
        rt: Runtime, fake: Fake, api_key: str) -> None:
    with serve(app_for(rt, fake)) as base, httpx.Client(base_url=base, timeout=10) as client:
        host, port = base.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(b"GET /chat HTTP/1.1\r\nHost: test\r\n\r\n")
        seen = b""
        while b'"type": "chunk"' not in seen:  # the model is streaming tokens to the client
            data = sock.recv(65536)
            assert data, f"the stream ended before its first chunk: {seen!r}"
            seen += data
        run_id = next(line.split(":", 1)[1].strip() for line in
                      seen.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
                      if line.lower().startswith("x-run-id:"))
        request = fake.app.requests[0]
        closed_at = time.monotonic()
        sock.close()
        assert request.disconnected.wait(5), "the model server's connection stayed open"
        assert request.disconnected_at is not None
        gap = request.disconnected_at - closed_at
        print(f"\nmodel server saw its connection closed {gap * 1000:.1f} ms after the SSE "
              "client disconnected")
        assert gap < BOUND
        assert request.finished_at is None and request.frames < 100
        deadline = time.monotonic() + 5
        while client.get(f"/runs/{run_id}").json()["status"] != "cancelled":
            assert time.monotonic() < deadline, client.get(f"/runs/{run_id}").json()
            time.sleep(0.01)
