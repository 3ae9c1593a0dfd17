"""Peer: Haystack, a pipeline with one streaming component, served over SSE.

Haystack 3 folded ``AsyncPipeline`` into ``Pipeline`` (``run_async``) and added
``Pipeline.stream()``, its documented way to stream: for each async component with a
``streaming_callback`` input it injects a callback that puts every ``StreamingChunk`` on a
queue, runs the pipeline in a task and hands back an async-iterable handle over the queue
(``cancel_on_abandon=True``, the default: an abandoned iteration cancels the task). The
endpoint serves the chunks with sse-starlette's ``EventSourceResponse``, then the ``done``
event from ``handle.result``.

The component is a mock chat generator that streams the mock model's words through its
``streaming_callback`` (``StreamingChunk(content=word)``; the two status events travel as
chunks with empty content and ``meta["status"]``) and returns ``{"replies": [full_text]}``,
as Haystack's own generators do. Stop probe: ``TRACKER.track`` (``_chat.py``) around the
component's model call, served at ``GET /stats``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from _chat import TRACKER, tracked_stream
from haystack import Pipeline, component
from haystack.dataclasses import AsyncStreamingCallbackT, StreamingChunk
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@component
class MockChatGenerator:
    """Streams the mock model's answer to ``prompt`` through ``streaming_callback``."""

    @component.output_types(replies=list[str])
    def run(self, prompt: str, streaming_callback: AsyncStreamingCallbackT | None = None
            ) -> dict[str, Any]:
        raise NotImplementedError("this benchmark runs the pipeline asynchronously only")

    @component.output_types(replies=list[str])
    async def run_async(self, prompt: str,
                        streaming_callback: AsyncStreamingCallbackT | None = None
                        ) -> dict[str, Any]:
        full_text = ""
        async for item in tracked_stream(prompt):
            kind = item["type"]
            if kind == "done":
                full_text = item["full_text"]
            elif streaming_callback is not None:
                if kind == "status":
                    await streaming_callback(StreamingChunk(content="",
                                                            meta={"status": item["status"]}))
                else:
                    await streaming_callback(StreamingChunk(content=item["text"]))
        return {"replies": [full_text]}


pipeline = Pipeline()
pipeline.add_component("llm", MockChatGenerator())


async def chat(request: Request) -> EventSourceResponse:
    prompt = (await request.json())["prompt"]

    async def events() -> AsyncIterator[dict[str, Any]]:
        handle = pipeline.stream(data={"llm": {"prompt": prompt}})
        async for chunk in handle:
            status = chunk.meta.get("status")
            item = ({"type": "status", "status": status} if status
                    else {"type": "chunk", "text": chunk.content})
            yield {"data": json.dumps(item)}
        full_text = handle.result["llm"]["replies"][0]
        yield {"data": json.dumps({"type": "done", "full_text": full_text})}

    return EventSourceResponse(events())


async def root(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def stats(_request: Request) -> JSONResponse:
    return JSONResponse(TRACKER.snapshot())


app = Starlette(routes=[Route("/", root), Route("/stats", stats),
                        Route("/chat", chat, methods=["POST"])])
