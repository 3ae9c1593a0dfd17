"""The OpenAPI of the protocol endpoints (``protocols.py``): their request bodies and answers,
so that ``/docs`` shows them and schemathesis can check them."""

from __future__ import annotations

from typing import Any

from runstream_sse import sse_openapi_response

_DETAIL = {"type": "object", "properties": {"detail": {}}, "required": ["detail"]}
_OPENAI_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}


#: The refusals every protocol endpoint shares with /chat.
REFUSALS: dict[int | str, dict[str, Any]] = {
    413: _json("The request body is larger than max_body_bytes.", _DETAIL),
    422: _json("The body is not a request of the protocol, has no user message, or its "
               "prompt is empty or too long (FastAPI's 422 shape).", _DETAIL),
    503: _json("Too many chats in flight (limits.max_concurrent_runs) or shutting down; see "
               "Retry-After.", _DETAIL),
}

_MESSAGE = {"type": "object", "required": ["role"], "properties": {
    "role": {"type": "string"}, "content": {"type": ["string", "array", "null"]}}}

VERCEL = {
    "responses": {200: sse_openapi_response("The answer as a Vercel AI SDK UI message stream "
                                            "(x-vercel-ai-ui-message-stream: v1)."),
                  **REFUSALS},
    "openapi_extra": _body({"type": "object", "required": ["messages"], "properties": {
        "id": {"type": "string", "description": "The chat's id (useChat's)."},
        "messages": {"type": "array", "items": {
            "type": "object", "required": ["role"], "properties": {
                "id": {"type": "string"}, "role": {"type": "string"},
                "parts": {"type": "array", "items": {"type": "object"}}}}},
        "trigger": {"type": "string"}, "messageId": {"type": "string"}}}),
}

VERCEL_RESUME: dict[str, Any] = {"responses": {
    204: {"description": "The chat has no answer to resume."},
    307: {"description": "The chat's latest run, replayed from its start in the Vercel "
                         "protocol: /runs/{run_id}/events?protocol=vercel-ai."}}}

AGUI = {
    "responses": {200: sse_openapi_response("The answer as AG-UI events."), **REFUSALS},
    "openapi_extra": _body({"type": "object", "required": ["threadId", "runId", "messages"],
                            "properties": {
                                "threadId": {"type": "string"}, "runId": {"type": "string"},
                                "messages": {"type": "array", "items": _MESSAGE},
                                "tools": {"type": "array"}, "state": {},
                                "context": {"type": "array"}, "forwardedProps": {}}}),
}

OPENAI = {
    "responses": {
        200: {"description": "stream true: chat.completion.chunk events; else one "
                             "chat.completion.",
              "content": {**sse_openapi_response()["content"],
                          "application/json": {"schema": {"type": "object"}}}},
        404: _json("No such model (GET /v1/models lists them).", _OPENAI_ERROR),
        500: _json("The run failed or was cancelled (stream false).", _OPENAI_ERROR),
        **REFUSALS},
    "openapi_extra": _body({"type": "object", "required": ["model", "messages"], "properties": {
        "model": {"type": "string", "enum": ["runstream-chat", "runstream-chat-yaml"]},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object",
                           "properties": {"include_usage": {"type": "boolean"}}}}}),
}
