"""Peer: FastAPI's own Server-Sent Events (``fastapi.sse``, FastAPI >= 0.135), written by hand.

As FastAPI's tutorial shows: a path operation that ``yield``s, with
``response_class=EventSourceResponse``; each dict is JSON-encoded into one ``data:`` event.
The stream ends when the generator does (no terminal event). Stop probe: the generator's work
is wrapped in ``TRACKER.track`` (``_chat.py``), served at ``GET /stats``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

from _chat import TRACKER, tracked_stream
from fastapi import FastAPI
from fastapi.sse import EventSourceResponse
from pydantic import BaseModel


class ChatRequest(BaseModel):
    prompt: str


app = FastAPI()


@app.get("/")
async def root() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/stats")
async def stats() -> dict[str, Any]:
    return TRACKER.snapshot()


@app.post("/chat", response_class=EventSourceResponse)
async def chat(request: ChatRequest) -> AsyncIterable[dict[str, Any]]:
    async for item in tracked_stream(request.prompt):
        yield item
