"""OpenAI chat completions: ``chat.completion.chunk`` frames, and one ``chat.completion``.

Source: https://platform.openai.com/docs/api-reference/chat-streaming and the ``openai``
package's ``ChatCompletionChunk`` / ``ChatCompletion`` models. One run is one completion with one
choice (index 0): its ``content`` is the runs' ``chunk`` texts, its ``reasoning_content`` (the
field DeepSeek, vLLM and others use; the SDK keeps unknown fields) the ``reasoning`` texts, its
``tool_calls`` the tool call shapes. The protocol has no extension point: ``data``, ``status``,
``tool_result`` and unknown shapes are dropped. The mapping is the table in docs/protocols.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from runstream import EventRecord

from ._encoder import json_dumps
from ._protocols import (
    DONE,
    Payload,
    ProtocolAdapter,
    add_usage,
    event_shape,
    failure_text,
    finish_reason,
)

__all__ = ["OpenAIAdapter", "openai_completion"]

#: What an error object's ``type`` is for a run that failed and one that was cancelled.
_ERROR_TYPES: Final = {"run.failed": "server_error", "run.cancelled": "run_cancelled"}


def _error(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    if type_ == "run.failed":
        message = failure_text(data)
        code = str(data.get("error_type") or "Error")
    else:
        message = f"the run was cancelled: {data.get('reason') or 'cancelled'}"
        code = "cancelled"
    return {"error": {"message": message, "type": _ERROR_TYPES[type_], "param": None,
                      "code": code}}


class OpenAIAdapter(ProtocolAdapter):
    """Encode one run as an OpenAI chat completion stream (``protocol="openai"``).

    ``model`` is echoed in every chunk; ``include_usage`` (the request's
    ``stream_options.include_usage``) adds the last chunk with ``usage`` and no choices. The
    completion's ``id`` is ``chatcmpl-<run id>`` and ``created`` the second the run started."""

    name = "openai"

    def __init__(self, *, run_id: str, model: str = "runstream",
                 include_usage: bool = False) -> None:
        super().__init__(run_id=run_id)
        self.model = model
        self.include_usage = include_usage
        self._created = 0
        self._content = ("", "")
        self._tools: dict[str, int] = {}  # tool call id -> its index in this completion
        self._deltas = 0
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"id": f"chatcmpl-{self.run_id}", "object": "chat.completion.chunk",
                "created": self._created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish_reason}]}

    def open(self, seq: int, ts: float) -> list[Payload]:
        """See :meth:`ProtocolAdapter.open`."""
        self._created = int(ts)
        # The JSON of a content chunk, cut around its text: the hot path fills it in. After the
        # content come only fixed keys, so its placeholder is the last one in the text.
        head, _, tail = json_dumps(self._chunk({"content": "\0"})).rpartition('"\\u0000"')
        self._content = (head, tail)
        return [self._chunk({"role": "assistant", "content": ""})]

    def _tool_call(self, call: str, name: str | None, arguments: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"index": self._tools[call]}
        if name is not None:
            entry.update(id=call, type="function", function={"name": name,
                                                              "arguments": arguments})
        else:
            entry["function"] = {"arguments": arguments}
        return {"tool_calls": [entry]}

    def task_event(self, seq: int, step: str, shape: str, data: dict[str, Any]
                   ) -> list[Payload]:
        """See :meth:`ProtocolAdapter.task_event`."""
        if shape == "chunk":
            self._deltas += 1
            head, tail = self._content
            return [f"{head}{json_dumps(data['text'])}{tail}"]
        if shape == "reasoning":
            self._deltas += 1
            return [self._chunk({"reasoning_content": data["text"]})]
        if shape in ("tool_call_start", "tool_call_end") and data["id"] not in self._tools:
            self._tools[data["id"]] = len(self._tools)
            arguments = data["arguments"] if shape == "tool_call_end" else ""
            return [self._chunk(self._tool_call(data["id"], data["name"], arguments))]
        if shape == "tool_call_delta" and data["id"] in self._tools:
            return [self._chunk(self._tool_call(data["id"], None, data["arguments"]))]
        if shape == "done":
            self._finish_reason = finish_reason(data, self._finish_reason)
            self._usage = add_usage(self._usage, data.get("usage"))
        return []

    def step_retrying(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.step_retrying`."""
        # The protocol cannot take deltas back: an empty delta carries the retry in a field of
        # runstream's own, for a client that knows it (docs/protocols.md, "Retries").
        chunk = self._chunk({})
        chunk["runstream"] = {"retry": {
            "step": step, "attempt": data.get("attempt"),
            "next_attempt": data.get("next_attempt"), "error_type": data.get("error_type"),
            "message": data.get("message")}}
        return [chunk]

    def finish(self, seq: int, type_: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.finish`."""
        if type_ != "run.completed":
            return [_error(type_, data), DONE]
        reason = self._finish_reason or ("tool_calls" if self._tools else "stop")
        out: list[Payload] = [self._chunk({}, reason)]
        if self.include_usage:
            usage = _usage(self._usage, self._deltas)
            out.append({"id": f"chatcmpl-{self.run_id}", "object": "chat.completion.chunk",
                        "created": self._created, "model": self.model, "choices": [],
                        "usage": usage})
        out.append(DONE)
        return out


def _usage(reported: dict[str, Any] | None, deltas: int) -> dict[str, int]:
    """The model's reported usage; where a step reported none (a mock model), the deltas
    counted as completion tokens and no prompt tokens (counted, not tokenized)."""
    usage = dict(reported or {})
    prompt = int(usage.get("prompt_tokens", 0))
    completion = int(usage.get("completion_tokens", deltas))
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": int(usage.get("total_tokens", prompt + completion))}


def openai_completion(records: Iterable[EventRecord], *, run_id: str,
                      model: str = "runstream") -> tuple[int, dict[str, Any]]:
    """The HTTP status and body answering a ``stream: false`` request, from all of a run's
    records: 200 and a ``chat.completion``, or, for a failed or cancelled run (or records
    without a terminal one), 500 and an OpenAI error object. The text of an attempt that a
    ``step.retrying`` voided is left out. Write the body with ``json.dumps(body,
    ensure_ascii=True)``: a task's text may hold a lone surrogate, which UTF-8 cannot."""
    created = 0
    pieces: list[tuple[str, str, str]] = []  # (step, field, text)
    calls: dict[str, dict[str, Any]] = {}
    reason: str | None = None
    usage: dict[str, Any] | None = None
    deltas = 0
    for _seq, ts, type_, step, data in records:
        if not created:
            created = int(ts)
        name = step or ""
        if type_ == "step.retrying":
            pieces = [piece for piece in pieces if piece[0] != name]
            calls = {k: v for k, v in calls.items() if v["step"] != name}
        elif type_ in ("run.failed", "run.cancelled"):
            return 500, _error(type_, data)
        elif type_ == "run.completed":
            break
        elif type_ == "step.event":
            shape = event_shape(data)
            if shape in ("chunk", "reasoning"):
                deltas += 1
                field = "content" if shape == "chunk" else "reasoning_content"
                pieces.append((name, field, data["text"]))
            elif shape == "tool_call_end":
                calls[data["id"]] = {"step": name, "id": data["id"], "type": "function",
                                     "function": {"name": data["name"],
                                                  "arguments": data["arguments"]}}
            elif shape == "done":
                reason = finish_reason(data, reason)
                usage = add_usage(usage, data.get("usage"))
    else:
        return 500, _error("run.failed", {"error_type": "IncompleteRun",
                                          "message": "the run has no end in its records"})
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text for _, field, text in pieces if field == "content")}
    reasoning = "".join(text for _, field, text in pieces if field == "reasoning_content")
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [{k: v for k, v in call.items() if k != "step"}
                                 for call in calls.values()]
    return 200, {
        "id": f"chatcmpl-{run_id}", "object": "chat.completion", "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": reason or ("tool_calls" if calls else "stop")}],
        "usage": _usage(usage, deltas)}
