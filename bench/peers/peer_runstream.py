"""Peer: runstream, ``sse.response`` of the FastAPI example's chat pipeline.

As the quickstart and the example show: one ``Runtime`` (sqlite run log store in a temp dir,
``PEERS_DB``, as ``bench/soak_sse.py``), one ``SSE`` object (its lifespan, its ``/runs``
router), and ``POST /chat`` returning ``sse.response(pipeline, {"prompt": ...})``. The
pipeline is ``examples.fastapi_llm.pipelines.chat_pipeline()``'s shape (one
``AsyncPythonTask`` ``llm_response`` with ``returns=["full_text"]``) around the example's own
``mock_llm_stream``, wrapped only for the stop probe (``TRACKER.track``, ``_chat.py``, served
at ``GET /stats``). Each answer ends with the named ``run.completed`` event.

Runs in the workspace venv (``uv run``), with the repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from _chat import TRACKER
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel
from runstream import AsyncPipeline, ComponentConfig, Config, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE, SSEResponse

from examples.fastapi_llm.llm_mock import mock_llm_stream


async def llm_response(prompt: str) -> AsyncIterator[dict[str, Any]]:
    with TRACKER.track(prompt):
        async for item in mock_llm_stream(prompt):
            yield item


pipeline = AsyncPipeline(name="chat", steps=[
    AsyncPythonTask(name="llm_response", function=llm_response, returns=["full_text"])])

runtime = Runtime(Config(run_log_store=ComponentConfig(type="sqlite",
                                                       path=os.environ["PEERS_DB"])))
sse = SSE(runtime)
app = FastAPI(lifespan=sse.lifespan)
app.include_router(sse.router())


class Chat(BaseModel):
    prompt: str


@app.get("/")
async def root() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/stats")
async def stats() -> dict[str, Any]:
    return TRACKER.snapshot()


@app.post("/chat", response_class=SSEResponse)
async def chat(body: Chat) -> Response:
    return sse.response(pipeline, {"prompt": body.prompt})
