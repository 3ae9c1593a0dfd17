"""A small web app for the cancellation test: ``POST /slow`` streams ``slow_pipeline`` (whose
``finally`` writes a marker file) through the ``taskiq`` executor of
``RUNSTREAM_CONFIGURATION_FILE``. Run with ``uvicorn taskiq_app:app`` (this directory on the
PYTHONPATH)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from runstream import Runtime, load_pipeline_ref
from runstream_sse import SSE

runtime = Runtime()
sse = SSE(runtime)
pipeline = load_pipeline_ref("taskiq_pipelines:slow_pipeline", runtime)
rerun = load_pipeline_ref("taskiq_pipelines:rerun_pipeline", runtime)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with runtime, sse.lifespan(app):
        yield


app = FastAPI(lifespan=lifespan)
app.include_router(sse.router())


@app.get("/")
async def root() -> dict[str, Any]:
    return {"status": "ok"}


@app.post("/slow")
async def slow(marker: str) -> Response:
    return sse.response(pipeline, parameters={"count": 100_000, "marker": marker})


@app.post("/rerun")
async def rerun_slow(count: int) -> Response:
    return sse.response(rerun, parameters={"count": count}, lifecycle=True)
