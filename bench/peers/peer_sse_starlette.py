"""Peer: sse-starlette's ``EventSourceResponse`` on a plain Starlette app.

As sse-starlette's README shows: an async generator of ``{"data": ...}`` dicts handed to
``EventSourceResponse``; each model event is one ``data:`` line of JSON. The stream ends when
the generator does (no terminal event). Stop probe: ``TRACKER.track`` (``_chat.py``) around
the model's work, served at ``GET /stats``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from _chat import TRACKER, tracked_stream
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def chat(request: Request) -> EventSourceResponse:
    prompt = (await request.json())["prompt"]

    async def events() -> AsyncIterator[dict[str, Any]]:
        async for item in tracked_stream(prompt):
            yield {"data": json.dumps(item)}

    return EventSourceResponse(events())


async def root(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def stats(_request: Request) -> JSONResponse:
    return JSONResponse(TRACKER.snapshot())


app = Starlette(routes=[Route("/", root), Route("/stats", stats),
                        Route("/chat", chat, methods=["POST"])])
