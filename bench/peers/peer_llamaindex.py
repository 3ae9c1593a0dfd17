"""Peer: LlamaIndex workflows (``llama-index-workflows``), one step that streams events.

As the workflows' streaming docs show: the step writes each model event with
``ctx.write_event_to_stream(...)`` and returns a ``StopEvent`` with the full text; the endpoint
runs ``workflow.run(prompt=...)``, iterates ``handler.stream_events()`` and serves the events
with sse-starlette's ``EventSourceResponse`` (the ``StopEvent`` becomes the ``done`` event),
then awaits the handler. The workflow object is built once, at import. Stop probe:
``TRACKER.track`` (``_chat.py``) around the step's model call, served at ``GET /stats``.
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
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent


class StatusEvent(Event):
    status: str


class ChunkEvent(Event):
    text: str


class ChatWorkflow(Workflow):
    @step
    async def generate(self, ctx: Context, ev: StartEvent) -> StopEvent:
        full_text = ""
        async for item in tracked_stream(ev.prompt):
            kind = item["type"]
            if kind == "status":
                ctx.write_event_to_stream(StatusEvent(status=item["status"]))
            elif kind == "chunk":
                ctx.write_event_to_stream(ChunkEvent(text=item["text"]))
            else:
                full_text = item["full_text"]
        return StopEvent(result=full_text)


workflow = ChatWorkflow(timeout=60)


async def chat(request: Request) -> EventSourceResponse:
    prompt = (await request.json())["prompt"]

    async def events() -> AsyncIterator[dict[str, Any]]:
        handler = workflow.run(prompt=prompt)
        async for ev in handler.stream_events():
            if isinstance(ev, StatusEvent):
                item: dict[str, Any] = {"type": "status", "status": ev.status}
            elif isinstance(ev, ChunkEvent):
                item = {"type": "chunk", "text": ev.text}
            elif isinstance(ev, StopEvent):
                item = {"type": "done", "full_text": ev.result}
            else:
                continue
            yield {"data": json.dumps(item)}
        await handler

    return EventSourceResponse(events())


async def root(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def stats(_request: Request) -> JSONResponse:
    return JSONResponse(TRACKER.snapshot())


app = Starlette(routes=[Route("/", root), Route("/stats", stats),
                        Route("/chat", chat, methods=["POST"])])
