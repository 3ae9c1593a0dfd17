"""Peer: pydantic-ai, an ``Agent`` on a ``FunctionModel`` served through its Vercel AI adapter.

As pydantic-ai's "Vercel AI Data Stream Protocol" docs show for Starlette-based frameworks:
the endpoint returns ``await VercelAIAdapter.dispatch_request(request, agent=agent)``. The
request body is the AI SDK's ``submit-message`` request (the prompt is the text part of the
last user message); the answer streams as Vercel AI data-stream frames (``start``,
``text-start``, one ``text-delta`` per word, ``text-end``, ``finish``, ``[DONE]``).

The model is a ``FunctionModel`` whose stream function yields the mock model's words with
the same pacing (0.3 s + 0.1 s before the first word, 50 ms between words). The protocol has
no place for the mock's ``status`` events or its ``done`` dict: the full text is the sum of
the deltas. Stop probe: ``TRACKER.track`` (``_chat.py``) around the stream function, served at
``GET /stats``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from _chat import TRACKER, tracked_stream
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.ui.vercel_ai import VercelAIAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def _prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    raise ValueError("no user prompt in the request")


async def stream_words(messages: list[ModelMessage], _info: AgentInfo) -> AsyncIterator[str]:
    async for item in tracked_stream(_prompt(messages)):
        if item["type"] == "chunk":
            yield item["text"]


agent = Agent(FunctionModel(stream_function=stream_words))


async def chat(request: Request) -> Response:
    return await VercelAIAdapter.dispatch_request(request, agent=agent)


async def root(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def stats(_request: Request) -> JSONResponse:
    return JSONResponse(TRACKER.snapshot())


app = Starlette(routes=[Route("/", root), Route("/stats", stats),
                        Route("/chat", chat, methods=["POST"])])
