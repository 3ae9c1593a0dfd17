"""
FastAPI LLM streaming example.

Demonstrates native async streaming from AsyncPipeline functions to SSE clients.

Start the server:
    uv run uvicorn examples.fastapi_llm.main:app --reload

Test with curl:
    curl -N -X POST http://localhost:8000/chat \
        -H "Content-Type: application/json" \
        -d '{"prompt": "Hello, how are you?"}'

Or open http://localhost:8000/ui in a browser.

Runs belong to the browser (or curl cookie jar) that started them: an anonymous session cookie
(``sessions.py``) is set on the first visit or chat, and ``/runs/{run_id}`` answers 404 to
anyone without it. With curl, keep the cookie: ``curl -c jar -b jar ...``.

Stopping the server (Ctrl+C, SIGTERM) ends every open stream with ``run.cancelled`` (reason
``shutdown``) and marks those runs cancelled in the run log store before the process exits.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from runstream import AsyncPipeline, Config, Runtime, load_pipeline, load_pipeline_ref
from runstream_sse import SSE, SSEResponse, StartupErrors, sse_openapi_response

from examples.fastapi_llm.body_limit import BodyLimitMiddleware
from examples.fastapi_llm.pipelines import (
    CHAT_PIPELINE_YAML,
    MODELS,
    REMOTE_CHAT_PIPELINE,
    chat_pipeline,
    failing_chat_pipeline,
    openai_chat_pipeline,
    openai_yaml_chat_pipeline,
    yaml_chat_pipeline,
)
from examples.fastapi_llm.protocols import add_protocol_routes
from examples.fastapi_llm.sessions import CurrentSession, Session, session_owner
from examples.fastapi_llm.validation import validation_error_handler

#: The longest prompt accepted by default, in characters.
DEFAULT_MAX_PROMPT_CHARS = 8000

#: The largest request body accepted by default, in bytes (413 beyond it): room for a prompt
#: of DEFAULT_MAX_PROMPT_CHARS characters even when JSON escapes each one as ``\uXXXX``.
DEFAULT_MAX_BODY_BYTES = 64 * 1024

_PAGE = Path(__file__).with_name("chat.html")

#: The React chat page's build (examples/react_chat: ``npm run build``), served at /app.
REACT_BUILD = Path(__file__).parents[1] / "react_chat" / "dist"


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}}}}


#: The documented responses of the chat endpoints (the OpenAPI schema at /openapi.json).
CHAT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: sse_openapi_response("The answer as Server-Sent Events: one unnamed event per dict "
                              "the model yields, then run.completed, run.failed or "
                              "run.cancelled."),
    400: _problem("The body could not be read as JSON text (e.g. it is not UTF-8)."),
    413: _problem("The request body is larger than max_body_bytes."),
    503: _problem("Too many chats in flight (limits.max_concurrent_runs) or shutting down; "
                  "see Retry-After."),
}


class ChatRequest(BaseModel):
    """Body of ``POST /chat`` and ``POST /chat/yaml``."""

    prompt: str = Field(description="The user's prompt.")
    fail_after: int | None = Field(
        default=None, ge=0, le=10_000,
        description="Demo of a failing run: the model fails after this many words.")


def _rejected(kind: str, message: str, **context: Any) -> RequestValidationError:
    # Same shape as FastAPI's own 422 errors, so clients handle one format.
    error: dict[str, Any] = {"type": kind, "loc": ("body", "prompt"), "msg": message}
    if context:
        error["ctx"] = context
    return RequestValidationError([error])


def create_app(
    *,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    config: Runtime | Config | str | os.PathLike[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    send_timeout: float | None = 30.0,
    shutdown_grace_period: float = 5.0,
    delay_scale: float | None = None,
    model: str | None = None,
) -> FastAPI:
    """Build the example app.

    ``config`` is a :class:`runstream.Runtime` (the caller closes it), a :class:`runstream.Config`
    or a config file path; ``None`` reads ``runstream.yaml`` if present, else keeps run logs in
    ``.runstream/runstream.db``. Its ``limits.max_concurrent_runs`` caps the chats in flight
    (503 with ``Retry-After`` beyond it).

    - ``max_prompt_chars``: longer prompts are rejected (422).
    - ``max_body_bytes``: larger request bodies are rejected (413) without being read.
    - ``send_timeout``: a client that reads nothing for this long loses its stream and its run
      is cancelled (None: wait forever).
    - ``shutdown_grace_period``: when the server stops, open streams are ended with
      ``run.cancelled`` (reason ``shutdown``) within this many seconds.
    - ``delay_scale``: multiplies the mock model's delays (0: as fast as possible, for tests);
      None reads ``RUNSTREAM_EXAMPLE_DELAY_SCALE``, default 1.
    - ``model``: ``"mock"`` or ``"openai"`` (an OpenAI-compatible server: ``OPENAI_BASE_URL``,
      ``OPENAI_MODEL``, ``OPENAI_API_KEY``); None reads ``RUNSTREAM_EXAMPLE_MODEL``, default
      ``"mock"``. The failure demo (``fail_after``) always uses the mock.
    """
    model = model if model is not None else os.environ.get("RUNSTREAM_EXAMPLE_MODEL") or "mock"
    if model not in MODELS:
        raise ValueError(f"model (RUNSTREAM_EXAMPLE_MODEL) must be one of {', '.join(MODELS)}, "
                         f"got {model!r}")
    if max_prompt_chars < 1:
        raise ValueError(f"max_prompt_chars must be at least 1, got {max_prompt_chars}")
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
    if delay_scale is None:
        raw_scale = os.environ.get("RUNSTREAM_EXAMPLE_DELAY_SCALE") or "1"
        try:
            delay_scale = float(raw_scale)
        except ValueError:
            raise ValueError(f"RUNSTREAM_EXAMPLE_DELAY_SCALE must be a number, got {raw_scale!r}"
                             ) from None
    if not delay_scale >= 0:
        raise ValueError(f"delay_scale must be >= 0, got {delay_scale}")
    owns_runtime = not isinstance(config, Runtime)
    runtime = config if isinstance(config, Runtime) else Runtime(config)
    if runtime.executor.remote:
        # A remote executor (executor: {type: taskiq, ...}): workers load the pipelines by
        # reference, with RUNSTREAM_EXAMPLE_DELAY_SCALE from their own environment.
        python_pipeline = load_pipeline_ref(REMOTE_CHAT_PIPELINE, runtime)
        yaml_pipeline = load_pipeline(CHAT_PIPELINE_YAML, runtime)
    elif model == "openai":
        python_pipeline = openai_chat_pipeline()
        yaml_pipeline = openai_yaml_chat_pipeline(runtime)
    else:
        python_pipeline = chat_pipeline(delay_scale)
        yaml_pipeline = yaml_chat_pipeline(runtime, delay_scale)
    # One SSE object for the streams and the runs router: they share the runtime and its event
    # log, so /runs/{id}/events replays (and resumes, Last-Event-ID) what /chat streamed, and
    # POST /runs/{id}/cancel (the page's Stop button) stops it. With a shared event log
    # (event_log: {type: redis, ...} in the config) that holds across workers and machines.
    # authorize: /runs/{id}, its events and its cancel serve a run only to the session that
    # started it (its cookie); anyone else gets 404, as for a run that does not exist.
    sse = SSE(runtime, send_timeout=send_timeout, shutdown_grace_period=shutdown_grace_period,
              authorize=session_owner)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # The runtime connects its event log now: an unreachable server (a shared log) is
            # a clear error at start, not at the first chat. Ours is closed at the end.
            if owns_runtime:
                await stack.enter_async_context(runtime)
            else:
                await runtime.start()
            # Runs left `running` by a process that died (kill -9, a crash) are marked
            # `abandoned` now, not at the first chat.
            await runtime.recover_abandoned()
            # sse.lifespan hears SIGTERM/Ctrl+C and ends the open streams (run.cancelled,
            # reason "shutdown") so that the server can stop; the runs are recorded as
            # cancelled before the store is closed.
            async with sse.lifespan(app):
                yield

    app = FastAPI(title="Async LLM Streaming Demo", lifespan=lifespan)
    # A 422 even for NaN or 1e400 in the body (FastAPI's own handler cannot send those: 500).
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    # An unreachable Redis or PostgreSQL at start: uvicorn prints the error's one line (the
    # URL, password masked), not a traceback, and exits.
    app.add_middleware(StartupErrors)
    app.include_router(sse.router())
    add_protocol_routes(app, sse, {"python": python_pipeline, "yaml": yaml_pipeline},
                        max_prompt_chars=max_prompt_chars,
                        failing=lambda n: failing_chat_pipeline(n, delay_scale=delay_scale))

    def stream(pipeline: AsyncPipeline, request: ChatRequest, session: Session) -> Response:
        prompt = request.prompt
        if not prompt.strip():
            raise _rejected("string_too_short", "prompt must not be empty")
        if len(prompt) > max_prompt_chars:
            raise _rejected(
                "string_too_long",
                f"prompt has {len(prompt)} characters; the limit is {max_prompt_chars}",
                max_length=max_prompt_chars)
        if request.fail_after is not None:
            pipeline = failing_chat_pipeline(request.fail_after, delay_scale=delay_scale)
        return session.set_cookie(
            sse.response(pipeline, parameters={"prompt": prompt}, owner=session.owner))

    @app.get("/")
    async def root() -> dict[str, Any]:
        """Health check and usage info."""
        return {
            "status": "ok",
            "endpoints": {
                "/chat": "POST - Stream LLM response via SSE",
                "/chat/yaml": "POST - Same, from the YAML pipeline (mock-llm task type)",
                "/ui": "GET - Chat page for the browser",
                "/runs/{run_id}": "GET - A run's status and run log",
                "/runs/{run_id}/events": "GET - Replay a run's events via SSE "
                                         "(Last-Event-ID resumes)",
                "/runs/{run_id}/cancel": "POST - Stop a run (the page's Stop button)",
                "/api/chat": "POST - Vercel AI SDK useChat (UI message stream)",
                "/api/chat/{chat_id}/stream": "GET - Resume a useChat answer (204: none)",
                "/agui": "POST - AG-UI (RunAgentInput in, AG-UI events out)",
                "/v1/chat/completions": "POST - OpenAI chat completions (stream or not)",
                "/v1/models": "GET - The models /v1/chat/completions serves",
                "/app": "GET - The React chat page (examples/react_chat, once built)",
            },
            "model": model,
            "max_prompt_chars": max_prompt_chars,
            "max_body_bytes": max_body_bytes,
        }

    @app.post("/chat", response_class=SSEResponse, status_code=200, responses=CHAT_RESPONSES)
    async def chat(request: ChatRequest, session: CurrentSession) -> Response:
        """Stream the LLM response of the Python pipeline via Server-Sent Events.

        Each dict the task yields is one ``data:`` event (with an ``id:``); the stream ends
        with a named ``run.completed`` or ``run.failed`` event. ``X-Run-Id`` names the run.
        """
        return stream(python_pipeline, request, session)

    @app.post("/chat/yaml", response_class=SSEResponse, status_code=200,
              responses=CHAT_RESPONSES)
    async def chat_yaml(request: ChatRequest, session: CurrentSession) -> Response:
        """Like ``/chat``, with the pipeline of ``chat_pipeline.yaml`` (task type mock-llm)."""
        return stream(yaml_pipeline, request, session)

    @app.get("/ui", response_class=HTMLResponse)
    async def ui(session: CurrentSession) -> Response:
        """The chat page: a prompt box, the answer streaming in, Stop, errors. The first visit
        gets the session cookie that the page's runs will belong to."""
        return session.set_cookie(HTMLResponse(_PAGE.read_text(encoding="utf-8")))

    if (REACT_BUILD / "index.html").exists():
        # The React page (useChat on /api/chat); built with `npm run build` in react_chat/.
        app.mount("/app", StaticFiles(directory=REACT_BUILD, html=True), name="react-chat")

    return app


app = create_app()


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
