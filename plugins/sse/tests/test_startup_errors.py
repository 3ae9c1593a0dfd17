"""StartupErrors: a start-up failing with a runstream error reaches the server as one line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from runstream import EventLogError
from runstream_sse import StartupErrors


def app_failing_with(error: BaseException | None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if error is not None:
            raise error
        yield

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(StartupErrors)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def start_up(app: FastAPI) -> tuple[list[dict[str, Any]], BaseException | None]:
    """Run the ASGI lifespan start-up as a server does; what it sent, and what it raised."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    try:
        await app(scope, receive, send)
    except BaseException as exc:
        return sent, exc
    return sent, None


async def test_a_runstream_error_at_start_is_its_one_line() -> None:
    error = EventLogError("event log: cannot connect: Redis at redis://:***@127.0.0.1:1/0")
    sent, raised = await start_up(app_failing_with(error))
    assert raised is None
    assert sent == [{"type": "lifespan.startup.failed",
                     "message": f"EventLogError: {error}"}]


async def test_any_other_error_keeps_the_servers_traceback() -> None:
    sent, raised = await start_up(app_failing_with(ValueError("a bug")))
    assert isinstance(raised, ValueError)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "Traceback" in sent[0]["message"] and "ValueError: a bug" in sent[0]["message"]


async def test_a_clean_start_and_requests_pass_through() -> None:
    app = app_failing_with(None)
    sent, raised = await start_up(app)
    assert raised is None
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        response = await client.get("/ping")
    assert response.json() == {"ok": "yes"}
