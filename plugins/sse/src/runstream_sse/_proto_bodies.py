"""The request bodies of the front ends' protocols, read into a prompt and a message history.

- Vercel AI SDK ``useChat``: ``{"id", "messages": [{"id", "role", "parts": [...]}], "trigger",
  "messageId", ...}``; a message's text is its ``text`` parts.
- AG-UI ``RunAgentInput``: ``{"threadId", "runId", "messages": [{"id", "role", "content"}],
  "tools", "state", "context", "forwardedProps"}``.
- OpenAI ``ChatCompletionRequest``: ``{"model", "messages": [{"role", "content"}], "stream",
  "stream_options": {"include_usage"}, ...}``; ``content`` is a string or an array of parts.

The prompt is the last user message's text; the messages before it become ``messages``, a list
of ``{"role", "content"}`` (text only). A body that is not JSON, has the wrong types, no user
message or is too large raises ``ValueError`` with a message for the client (a 422).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["ChatRequest", "parse_chat_request"]

#: The largest body :func:`parse_chat_request` reads.
MAX_BODY_BYTES: Final = 1_000_000
_MAX_MESSAGES: Final = 1000


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _UIMessage(_Loose):
    id: str = ""
    role: str
    parts: list[dict[str, Any]] = Field(default_factory=list)


class _VercelBody(_Loose):
    id: str | None = None
    messages: list[_UIMessage] = Field(max_length=_MAX_MESSAGES)
    trigger: str | None = None
    messageId: str | None = None


class _Message(_Loose):
    role: str
    content: str | list[dict[str, Any]] | None = None


class _AGUIBody(_Loose):
    threadId: str
    runId: str
    messages: list[_Message] = Field(max_length=_MAX_MESSAGES)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    state: Any = None
    context: list[dict[str, Any]] = Field(default_factory=list)
    forwardedProps: Any = None


class _StreamOptions(_Loose):
    include_usage: bool = False


class _OpenAIBody(_Loose):
    model: str
    messages: list[_Message] = Field(min_length=1, max_length=_MAX_MESSAGES)
    stream: bool = False
    stream_options: _StreamOptions | None = None


@dataclass(frozen=True)
class ChatRequest:
    """A front end's request, read: what the pipeline gets, and what the adapter takes.

    ``options`` are keyword arguments for the protocol's adapter (``ADAPTERS[protocol](run_id=...,
    **request.options)``); ``stream`` is False only for an OpenAI ``stream: false`` request."""

    protocol: str
    prompt: str
    messages: list[dict[str, str]]
    options: dict[str, Any] = field(default_factory=dict)
    stream: bool = True


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content or ()
                   if part.get("type") == "text" and isinstance(part.get("text"), str))


def _split(protocol: str, history: list[dict[str, str]]) -> tuple[str, list[dict[str, str]]]:
    for index in range(len(history) - 1, -1, -1):
        if history[index]["role"] == "user":
            return history[index]["content"], history[:index]
    raise ValueError(f"the {protocol} request has no user message: the prompt is the last "
                     "message with role 'user'")


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                     for e in error.errors(include_url=False)[:5])


def parse_chat_request(protocol: str, body: bytes | str | Mapping[str, Any]) -> ChatRequest:
    """Read a request body of ``protocol`` (``"vercel-ai"``, ``"ag-ui"`` or ``"openai"``):
    raw JSON (at most :data:`MAX_BODY_BYTES`) or its parsed object. Raises ``ValueError``
    naming what is wrong."""
    if isinstance(body, (bytes, str)):
        size = len(body.encode() if isinstance(body, str) else body)
        if size > MAX_BODY_BYTES:
            raise ValueError(f"the {protocol} request body is {size} bytes; the limit is "
                             f"{MAX_BODY_BYTES}")
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise ValueError(f"the {protocol} request body is not JSON: {exc}") from None
    if not isinstance(body, Mapping):
        raise ValueError(f"the {protocol} request body must be a JSON object, got "
                         f"{type(body).__name__}")
    models: dict[str, type[BaseModel]] = {"vercel-ai": _VercelBody, "ag-ui": _AGUIBody,
                                          "openai": _OpenAIBody}
    if protocol not in models:
        raise ValueError(f"unknown protocol {protocol!r}; request bodies are read for "
                         f"{', '.join(sorted(models))}")
    try:
        parsed = models[protocol].model_validate(body)
    except ValidationError as exc:
        raise ValueError(f"invalid {protocol} request body: {_problems(exc)}") from None
    if isinstance(parsed, _VercelBody):
        history = [{"role": m.role, "content": _text(m.parts)} for m in parsed.messages]
        prompt, earlier = _split(protocol, history)
        return ChatRequest(protocol, prompt, earlier)
    assert isinstance(parsed, (_AGUIBody, _OpenAIBody))
    history = [{"role": m.role, "content": _text(m.content)} for m in parsed.messages]
    prompt, earlier = _split(protocol, history)
    if isinstance(parsed, _AGUIBody):
        return ChatRequest(protocol, prompt, earlier,
                           {"thread_id": parsed.threadId, "agui_run_id": parsed.runId})
    usage = parsed.stream_options is not None and parsed.stream_options.include_usage
    return ChatRequest(protocol, prompt, earlier,
                       {"model": parsed.model, "include_usage": usage}, stream=parsed.stream)
