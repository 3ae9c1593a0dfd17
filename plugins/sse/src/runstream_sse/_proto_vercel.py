"""The Vercel AI SDK's UI message stream (v1), as ``useChat`` and ``readUIMessageStream`` read it.

Source: https://ai-sdk.dev/docs/ai-sdk-ui/stream-protocol and the ``ai`` package's
``uiMessageChunkSchema`` (v6). One run is one assistant message: ``start``, its parts, ``finish``,
then ``data: [DONE]``. The mapping is the table in docs/protocols.md.

Rules of the SDK's fold (``processUIMessageStream``) that shape this module:

- a ``text-delta`` or ``text-end`` needs its ``text-start`` (the same for reasoning parts and for
  ``tool-input-delta`` after ``tool-input-start``), else the client throws: a delta that has no
  open part opens one;
- ``finish-step`` forgets every open text and reasoning part, of every step: parts of steps
  still running (parallel steps) are then opened again, under a new id, at their next delta;
- ``tool-output-available`` needs the call to be known: a result for a call the stream never
  started goes to the ``data-runstream-event`` part instead.
"""

from __future__ import annotations

import json
from typing import Any, Final

from ._encoder import json_dumps
from ._protocols import (
    DONE,
    OpenParts,
    Payload,
    ProtocolAdapter,
    failure_text,
    finish_reason,
)

__all__ = ["VercelAdapter"]

#: runstream's finish reasons (OpenAI's) as the SDK names them.
_FINISH_REASONS: Final = {"stop": "stop", "length": "length", "tool_calls": "tool-calls",
                          "content_filter": "content-filter"}


class VercelAdapter(ProtocolAdapter):
    """Encode one run as a Vercel AI SDK UI message stream (``protocol="vercel-ai"``).

    ``message_id`` is the assistant message's id (default ``msg-<run id>``)."""

    name = "vercel-ai"

    def __init__(self, *, run_id: str, message_id: str | None = None) -> None:
        super().__init__(run_id=run_id)
        self.headers = {"x-vercel-ai-ui-message-stream": "v1"}
        self.message_id = message_id or f"msg-{run_id}"
        self._parts = OpenParts()
        self._tools: dict[str, str] = {}  # started tool calls: id -> name
        self._ended: set[str] = set()  # tool calls whose input is complete
        self._finish_reason: str | None = None
        self._usage: Any = None

    def open(self, seq: int, ts: float) -> list[Payload]:
        """See :meth:`ProtocolAdapter.open`."""
        return [{"type": "start", "messageId": self.message_id,
                 "messageMetadata": {"runId": self.run_id}}]

    def resume(self) -> list[Payload]:
        """See :meth:`ProtocolAdapter.resume`."""
        # A new reader (useChat's resume, readUIMessageStream) knows no open part: the same
        # message starts again and its open parts are opened again, under the same ids (the
        # rest of their text lands in new parts of the message, which add up to the text).
        out: list[Payload] = self.open(0, 0.0)
        out.extend({"type": f"{kind}-start", "id": part} for kind, part in self._parts.opened())
        out.extend({"type": "tool-input-start", "toolCallId": call, "toolName": name}
                   for call, name in self._tools.items() if call not in self._ended)
        return out

    def _delta(self, seq: int, step: str, kind: str, text: str) -> list[Payload]:
        out: list[Payload] = []
        part = self._parts.get(kind, step)
        if part is None:
            part = f"{kind}-{seq}"
            self._parts.start(kind, step, part)
            out.append({"type": f"{kind}-start", "id": part})
        # The JSON of {"type": ..., "id": part, "delta": text}, written from a template: ids
        # are ASCII made here ("text-<seq>"), so only the text needs encoding.
        out.append(f'{{"type": "{kind}-delta", "id": "{part}", "delta": {json_dumps(text)}}}')
        return out

    def _close(self, step: str | None) -> list[Payload]:
        return [{"type": f"{kind}-end", "id": part} for kind, part in self._parts.close(step)]

    def _tool_start(self, step: str, call: str, name: str) -> list[Payload]:
        self._tools[call] = name
        self._parts.note(step, call)
        return [{"type": "tool-input-start", "toolCallId": call, "toolName": name}]

    def task_event(self, seq: int, step: str, shape: str, data: dict[str, Any]
                   ) -> list[Payload]:
        """See :meth:`ProtocolAdapter.task_event`."""
        if shape == "chunk":
            return self._delta(seq, step, "text", data["text"])
        if shape == "reasoning":
            return self._delta(seq, step, "reasoning", data["text"])
        if shape == "tool_call_start" and data["id"] not in self._tools:
            return self._tool_start(step, data["id"], data["name"])
        if shape == "tool_call_delta" and data["id"] in self._tools:
            return [{"type": "tool-input-delta", "toolCallId": data["id"],
                     "inputTextDelta": data["arguments"]}]
        if shape == "tool_call_end":
            return self._tool_end(step, data)
        if shape == "tool_result" and data["id"] in self._tools:
            return [{"type": "tool-output-available", "toolCallId": data["id"],
                     "output": data["result"]}]
        if shape == "data":
            part = f"data-{seq}"
            self._parts.note(step, part)
            return [{"type": f"data-{data['name']}", "id": part, "data": data.get("data")}]
        if shape == "status":
            return [{"type": "data-runstream-status", "transient": True,
                     "data": {"step": step, "status": data["status"]}}]
        if shape == "done":
            self._finish_reason = finish_reason(data, self._finish_reason)
            usage = data.get("usage")
            self._usage = usage if isinstance(usage, dict) else self._usage
            return self._close(step)
        return [{"type": "data-runstream-event", "id": f"event-{seq}",
                 "data": {"step": step, "event": data}}]

    def _tool_end(self, step: str, data: dict[str, Any]) -> list[Payload]:
        call, name = data["id"], data["name"]
        out = [] if call in self._tools else self._tool_start(step, call, name)
        self._ended.add(call)
        try:
            tool_input = json.loads(data["arguments"]) if data["arguments"].strip() else {}
        except ValueError as exc:
            out.append({"type": "tool-input-error", "toolCallId": call, "toolName": name,
                        "input": data["arguments"],
                        "errorText": f"the arguments are not JSON: {exc}"})
            return out
        out.append({"type": "tool-input-available", "toolCallId": call, "toolName": name,
                    "input": tool_input})
        return out

    def step_started(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.step_started`."""
        return [{"type": "start-step"}]

    def step_completed(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.step_completed`."""
        out = self._close(step)
        out.append({"type": "finish-step"})
        self._parts.close()  # the client forgot them all (module docstring)
        self._parts.attempt(step)
        return out

    def step_retrying(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.step_retrying`."""
        # The SDK cannot take a part back: the failed attempt's parts are closed and named in a
        # data part, for the page to hide (docs/protocols.md, "Retries").
        out = self._close(step)
        out.append({"type": "data-runstream-retry", "id": f"retry-{seq}", "data": {
            "step": step, "attempt": data.get("attempt"),
            "next_attempt": data.get("next_attempt"), "error_type": data.get("error_type"),
            "message": data.get("message"), "void": self._parts.attempt(step)}})
        return out

    def step_failed(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.step_failed`."""
        return self._close(step)

    def warning(self, seq: int, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.warning`."""
        return [{"type": "data-runstream-warning", "transient": True, "data": data}]

    def finish(self, seq: int, type_: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.finish`."""
        out = self._close(None)
        if type_ == "run.completed":
            reason = _FINISH_REASONS[self._finish_reason or "stop"]
            metadata: dict[str, Any] = {"runId": self.run_id}
            if self._usage is not None:
                metadata["usage"] = self._usage
            out.append({"type": "finish", "finishReason": reason, "messageMetadata": metadata})
        elif type_ == "run.failed":
            out.append({"type": "error", "errorText": failure_text(data)})
            out.append({"type": "finish", "finishReason": "error"})
        else:
            out.append({"type": "abort", "reason": str(data.get("reason") or "cancelled")})
        out.append(DONE)
        return out
