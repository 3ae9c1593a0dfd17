"""The chat endpoints of the front ends' protocols, on the same pipelines as ``/chat``.

- ``POST /api/chat``: the Vercel AI SDK's ``useChat`` (UI message stream v1); ``GET
  /api/chat/{chat_id}/stream`` resumes the chat's latest answer (``useChat({resume: true})``
  after a page reload).
- ``POST /agui``: an AG-UI ``RunAgentInput`` (``HttpAgent``, CopilotKit).
- ``POST /v1/chat/completions`` (``stream`` true or false) and ``GET /v1/models``: any
  OpenAI-compatible client; the ``model`` picks the pipeline.

The prompt is the last user message; the messages before it reach the pipeline as its
``messages`` parameter. Each run belongs to the caller's session (its cookie), as on ``/chat``:
``/runs/{id}`` (status, replay with ``?protocol=``, cancel) serves it to that session only.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from runstream import AsyncPipeline
from runstream_sse import SSE, ChatRequest, SSEResponse, parse_chat_request

from examples.fastapi_llm.protocols_openapi import AGUI, OPENAI, VERCEL, VERCEL_RESUME
from examples.fastapi_llm.sessions import CurrentSession

#: Chats whose latest run ``GET /api/chat/{id}/stream`` can resume (the oldest are forgotten).
MAX_CHATS: Final = 10_000

#: The OpenAI model names and the pipeline each one runs (``python`` or ``yaml``).
OPENAI_MODELS: Final = {"runstream-chat": "python", "runstream-chat-yaml": "yaml"}


def _rejected(message: str, loc: tuple[str, ...] = ("body",)) -> RequestValidationError:
    # The same 422 shape as /chat's.
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message}])


def _fail_after(body: dict[str, Any]) -> int | None:
    """The failure demo's ``fail_after`` (as on /chat): top level, or in AG-UI's
    ``forwardedProps``."""
    props = body.get("forwardedProps")
    value = body.get("fail_after")
    if value is None and isinstance(props, dict):
        value = props.get("fail_after")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
        raise _rejected("fail_after must be an integer from 0 to 10000", ("body", "fail_after"))
    return value


def add_protocol_routes(app: FastAPI, sse: SSE, pipelines: dict[str, AsyncPipeline], *,
                        max_prompt_chars: int,
                        failing: Callable[[int], AsyncPipeline]) -> None:
    """Add the protocols' endpoints to ``app``; ``pipelines`` are ``python`` and ``yaml``
    (as ``/chat`` and ``/chat/yaml``), ``failing(n)`` the failure demo's pipeline."""
    #: (owner, chat id) -> the id of the chat's latest run.
    chats: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def read(request: Request, protocol: str) -> tuple[ChatRequest, dict[str, Any]]:
        raw = await request.body()
        try:
            chat = parse_chat_request(protocol, raw)
        except ValueError as exc:
            raise _rejected(str(exc)) from None
        if not chat.prompt.strip():
            raise _rejected("prompt must not be empty: the last user message has no text")
        if len(chat.prompt) > max_prompt_chars:
            raise _rejected(f"prompt has {len(chat.prompt)} characters; the limit is "
                            f"{max_prompt_chars}")
        body: dict[str, Any] = json.loads(raw)  # parse_chat_request read it: a JSON object
        return chat, body

    def pipeline_for(body: dict[str, Any], kind: str = "python") -> AsyncPipeline:
        fail_after = _fail_after(body)
        return pipelines[kind] if fail_after is None else failing(fail_after)

    @app.post("/api/chat", response_class=SSEResponse, status_code=200, **VERCEL)
    async def vercel_chat(request: Request, session: CurrentSession) -> Response:
        """Vercel AI SDK ``useChat``: the answer as a UI message stream (``X-Run-Id`` names
        the run; the assistant message's id is ``msg-<run id>``). The run goes on if the page
        is reloaded (``GET /api/chat/{id}/stream`` resumes it); Stop is ``POST
        /runs/{id}/cancel``."""
        chat, body = await read(request, "vercel-ai")
        response = sse.response(pipeline_for(body),
                                {"prompt": chat.prompt, "messages": chat.messages},
                                owner=session.owner, protocol="vercel-ai",
                                options=chat.options, on_disconnect="continue")
        chat_id = body.get("id")
        if isinstance(chat_id, str):
            chats[(session.owner, chat_id)] = response.run_id
            chats.move_to_end((session.owner, chat_id))
            while len(chats) > MAX_CHATS:
                chats.popitem(last=False)
        return session.set_cookie(response)

    @app.get("/api/chat/{chat_id}/stream", **VERCEL_RESUME)
    async def vercel_resume(chat_id: str, session: CurrentSession) -> Response:
        """The chat's latest answer, from its start, as a UI message stream (the AI SDK's
        resumable streams): a redirect to ``/runs/{id}/events?protocol=vercel-ai``; 204 if
        the chat has none."""
        run_id = chats.get((session.owner, chat_id))
        if run_id is None:
            return Response(status_code=204)
        return RedirectResponse(f"/runs/{run_id}/events?protocol=vercel-ai", status_code=307)

    @app.post("/agui", response_class=SSEResponse, status_code=200, **AGUI)
    async def agui(request: Request, session: CurrentSession) -> Response:
        """AG-UI: a ``RunAgentInput`` in, the run's AG-UI events out."""
        chat, body = await read(request, "ag-ui")
        return session.set_cookie(sse.response(
            pipeline_for(body), {"prompt": chat.prompt, "messages": chat.messages},
            owner=session.owner, protocol="ag-ui", options=chat.options))

    @app.post("/v1/chat/completions", status_code=200, **OPENAI)
    async def openai_chat(request: Request, session: CurrentSession) -> Response:
        """OpenAI chat completions: ``stream: true`` streams ``chat.completion.chunk``\\ s,
        else one ``chat.completion`` (500 and an OpenAI error for a failed run)."""
        chat, body = await read(request, "openai")
        model = chat.options["model"]
        if model not in OPENAI_MODELS:
            return JSONResponse({"error": {
                "message": f"model {model!r} does not exist; models: "
                           f"{', '.join(OPENAI_MODELS)} (GET /v1/models)",
                "type": "invalid_request_error", "param": "model",
                "code": "model_not_found"}}, status_code=404)
        pipeline = pipeline_for(body, OPENAI_MODELS[model])
        parameters = {"prompt": chat.prompt, "messages": chat.messages}
        if chat.stream:
            response: Response = sse.response(pipeline, parameters, owner=session.owner,
                                              protocol="openai", options=chat.options)
        else:
            response = sse.completion(pipeline, parameters, owner=session.owner,
                                      options=chat.options)
        return session.set_cookie(response)

    @app.get("/v1/models")
    async def openai_models() -> dict[str, Any]:
        """The models ``/v1/chat/completions`` serves: one per chat pipeline."""
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "runstream"}
            for name in OPENAI_MODELS]}
