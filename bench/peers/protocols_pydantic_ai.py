"""Peer of ``bench/bench_protocols.py``: pydantic-ai's protocol adapters, driven without a model.

Runs in the pydantic-ai venv (``bash bench/peers/setup.sh pydantic_ai``). ``GET
/p/{protocol}?n=N&pace_ms=P`` streams ``N`` text deltas (``"tok "``, as runstream's bench
task) through pydantic-ai's event stream of that protocol (``VercelAIEventStream``,
``AGUIEventStream``): the agent events a model's text stream makes (``PartStartEvent``, then
``PartDeltaEvent`` s, ``PartEndEvent``), ``transform_stream`` into the protocol's events,
``encode_stream`` into SSE text, ``streaming_response``, as ``dispatch_request`` does after the
agent run. No agent run, no model: the adapter's own cost, against runstream-sse's adapter on a
pipeline run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ag_ui.core import RunAgentInput
from pydantic_ai.messages import (
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)
from pydantic_ai.ui.ag_ui import AGUIEventStream
from pydantic_ai.ui.vercel_ai import VercelAIEventStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

TOKEN = "tok "


async def events(n: int, pace_ms: float) -> AsyncIterator[Any]:
    """A model's text stream of ``n`` deltas, ``pace_ms`` apart, as agent events."""
    delay = pace_ms / 1000
    yield PartStartEvent(index=0, part=TextPart(content=TOKEN))
    for _ in range(n - 1):
        if delay:
            await asyncio.sleep(delay)
        yield PartDeltaEvent(index=0, delta=TextPartDelta(content_delta=TOKEN))
    yield PartEndEvent(index=0, part=TextPart(content=TOKEN * n))


async def stream(request: Request) -> Response:
    q = request.query_params
    n, pace = int(q.get("n", "1000")), float(q.get("pace_ms", "0"))
    protocol = request.path_params["protocol"]
    adapter: Any
    if protocol == "vercel-ai":
        adapter = VercelAIEventStream(run_input=None, accept="text/event-stream")
    elif protocol == "ag-ui":
        adapter = AGUIEventStream(
            run_input=RunAgentInput(thread_id="thread", run_id="run", messages=[], tools=[],
                                    context=[], state=None, forwarded_props=None),
            accept="text/event-stream")
    else:
        return PlainTextResponse(f"unknown protocol {protocol!r}", status_code=404)
    return adapter.streaming_response(adapter.transform_stream(events(n, pace)))


async def root(_request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/", root), Route("/p/{protocol}", stream)])
