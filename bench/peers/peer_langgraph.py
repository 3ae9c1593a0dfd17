"""Peer: LangGraph, a one-node graph whose node streams through ``get_stream_writer``.

As LangGraph's streaming docs show: the node calls ``get_stream_writer()`` and writes each
model event; the endpoint iterates ``graph.astream(..., stream_mode="custom")`` and serves
the chunks with sse-starlette's ``EventSourceResponse`` (one ``data:`` line of JSON each).
The graph is compiled once, at import. The stream ends when the graph does (no terminal
event). Stop probe: ``TRACKER.track`` (``_chat.py``) around the node's model call, served at
``GET /stats``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from _chat import TRACKER, tracked_stream
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class State(TypedDict, total=False):
    prompt: str
    full_text: str


async def llm(state: State) -> dict[str, Any]:
    writer = get_stream_writer()
    full_text = ""
    async for item in tracked_stream(state["prompt"]):
        writer(item)
        if item["type"] == "done":
            full_text = item["full_text"]
    return {"full_text": full_text}


graph = StateGraph(State).add_node("llm", llm).add_edge(START, "llm").add_edge("llm", END).compile()


async def chat(request: Request) -> EventSourceResponse:
    prompt = (await request.json())["prompt"]

    async def events() -> AsyncIterator[dict[str, Any]]:
        async for chunk in graph.astream({"prompt": prompt}, stream_mode="custom"):
            yield {"data": json.dumps(chunk)}

    return EventSourceResponse(events())


async def root(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def stats(_request: Request) -> JSONResponse:
    return JSONResponse(TRACKER.snapshot())


app = Starlette(routes=[Route("/", root), Route("/stats", stats),
                        Route("/chat", chat, methods=["POST"])])
