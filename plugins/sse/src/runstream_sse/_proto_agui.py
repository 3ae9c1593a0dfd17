"""AG-UI (the Agent User Interaction Protocol), as ``@ag-ui/client``'s ``HttpAgent`` reads it.

Source: https://docs.ag-ui.com/concepts/events and the ``@ag-ui/core`` / ``ag-ui-protocol``
event schemas (1.0). One run is ``RUN_STARTED`` ... ``RUN_FINISHED`` or ``RUN_ERROR``; each step's
text is a ``TEXT_MESSAGE_*`` message, its reasoning a ``REASONING_*`` message, pipeline steps are
``STEP_STARTED``/``STEP_FINISHED``, and everything else is a ``CUSTOM`` event. The mapping is the
table in docs/protocols.md.

The client's verifier wants every message and tool call ended before the run ends, and nothing
after ``RUN_FINISHED``/``RUN_ERROR``: the terminal record ends what is still open first.
"""

from __future__ import annotations

from typing import Any

from ._encoder import json_dumps
from ._protocols import OpenParts, Payload, ProtocolAdapter, failure_text

__all__ = ["AGUIAdapter"]


class AGUIAdapter(ProtocolAdapter):
    """Encode one run as AG-UI events (``protocol="ag-ui"``).

    ``thread_id`` and ``agui_run_id`` are the ``threadId`` and ``runId`` of the client's
    ``RunAgentInput`` (default: the runstream run id for both)."""

    name = "ag-ui"

    def __init__(self, *, run_id: str, thread_id: str | None = None,
                 agui_run_id: str | None = None) -> None:
        super().__init__(run_id=run_id)
        self.thread_id = thread_id or run_id
        self.agui_run_id = agui_run_id or run_id
        self._parts = OpenParts()
        self._tools: dict[str, bool] = {}  # started tool calls: id -> ended
        self._names: dict[str, str] = {}  # started tool calls: id -> name
        self._steps: set[str] = set()
        self._usage: Any = None
        self._templates: dict[str, str] = {}

    def open(self, seq: int, ts: float) -> list[Payload]:
        """See :meth:`ProtocolAdapter.open`."""
        return [{"type": "RUN_STARTED", "threadId": self.thread_id, "runId": self.agui_run_id}]

    def resume(self) -> list[Payload]:
        """See :meth:`ProtocolAdapter.resume`."""
        # AG-UI has no resume: a reconnect is read as a run of its own, which starts, and in
        # which the steps, messages and tool calls still open start again (same ids).
        out: list[Payload] = self.open(0, 0.0)
        out.extend({"type": "STEP_STARTED", "stepName": step} for step in sorted(self._steps))
        for kind, message in self._parts.opened():
            if kind == "text":
                out.append({"type": "TEXT_MESSAGE_START", "messageId": message,
                            "role": "assistant"})
            else:
                out.append({"type": "REASONING_START", "messageId": message})
                out.append({"type": "REASONING_MESSAGE_START", "messageId": message,
                            "role": "reasoning"})
        out.extend({"type": "TOOL_CALL_START", "toolCallId": call, "toolCallName": name}
                   for call, name in self._names.items() if self._tools.get(call) is False)
        return out

    def _text(self, seq: int, step: str, kind: str, text: str) -> list[Payload]:
        if not text:
            return []
        out: list[Payload] = []
        message = self._parts.get(kind, step)
        if message is None:
            message = f"{kind}-{self.run_id}-{seq}"
            self._parts.start(kind, step, message)
            if kind == "text":
                out.append({"type": "TEXT_MESSAGE_START", "messageId": message,
                            "role": "assistant"})
            else:
                out.append({"type": "REASONING_START", "messageId": message})
                out.append({"type": "REASONING_MESSAGE_START", "messageId": message,
                            "role": "reasoning"})
        # The JSON of {"type": ..., "messageId": message, "delta": text}, from a template made
        # once per message (the id holds the run id, which is encoded with it).
        template = self._templates.get(message)
        if template is None:
            content = "TEXT_MESSAGE_CONTENT" if kind == "text" else "REASONING_MESSAGE_CONTENT"
            template = f'{{"type": "{content}", "messageId": {json_dumps(message)}, "delta": '
            self._templates[message] = template
        out.append(f"{template}{json_dumps(text)}}}")
        return out

    def _close(self, step: str | None) -> list[Payload]:
        out: list[Payload] = []
        for kind, message in self._parts.close(step):
            if kind == "text":
                out.append({"type": "TEXT_MESSAGE_END", "messageId": message})
            else:
                out.append({"type": "REASONING_MESSAGE_END", "messageId": message})
                out.append({"type": "REASONING_END", "messageId": message})
        return out

    def _end_tools(self) -> list[Payload]:
        open_calls = [call for call, ended in self._tools.items() if not ended]
        for call in open_calls:
            self._tools[call] = True
        return [{"type": "TOOL_CALL_END", "toolCallId": call} for call in open_calls]

    def _tool_start(self, step: str, call: str, name: str) -> list[Payload]:
        self._tools[call] = False
        self._names[call] = name
        self._parts.note(step, call)
        start: dict[str, Any] = {"type": "TOOL_CALL_START", "toolCallId": call,
                                 "toolCallName": name}
        parent = self._parts.get("text", step)
        if parent is not None:
            start["parentMessageId"] = parent
        return [start]

    def task_event(self, seq: int, step: str, shape: str, data: dict[str, Any]
                   ) -> list[Payload]:
        """See :meth:`ProtocolAdapter.task_event`."""
        if shape == "chunk":
            return self._text(seq, step, "text", data["text"])
        if shape == "reasoning":
            return self._text(seq, step, "reasoning", data["text"])
        if shape == "tool_call_start" and data["id"] not in self._tools:
            return self._tool_start(step, data["id"], data["name"])
        if shape == "tool_call_delta" and self._tools.get(data["id"]) is False:
            if not data["arguments"]:
                return []
            return [{"type": "TOOL_CALL_ARGS", "toolCallId": data["id"],
                     "delta": data["arguments"]}]
        if shape == "tool_call_end" and not self._tools.get(data["id"]):
            out: list[Payload] = []
            if data["id"] not in self._tools:
                out = self._tool_start(step, data["id"], data["name"])
                if data["arguments"]:
                    out.append({"type": "TOOL_CALL_ARGS", "toolCallId": data["id"],
                                "delta": data["arguments"]})
            self._tools[data["id"]] = True
            out.append({"type": "TOOL_CALL_END", "toolCallId": data["id"]})
            return out
        if shape == "tool_result" and data["id"] in self._tools:
            result = data["result"]
            message = f"tool-{self.run_id}-{seq}"
            self._parts.note(step, message)
            return [{"type": "TOOL_CALL_RESULT", "messageId": message, "toolCallId": data["id"],
                     "role": "tool",
                     "content": result if isinstance(result, str) else json_dumps(result)}]
        if shape == "data":
            return [{"type": "CUSTOM", "name": data["name"], "value": data.get("data")}]
        if shape == "status":
            return [{"type": "CUSTOM", "name": "runstream.status",
                     "value": {"step": step, "status": data["status"]}}]
        if shape == "done":
            usage = data.get("usage")
            self._usage = usage if isinstance(usage, dict) else self._usage
            return self._close(step)
        return [{"type": "CUSTOM", "name": "runstream.event",
                 "value": {"step": step, "event": data}}]

    def step_started(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.step_started`."""
        if step in self._steps:  # a retry: the step is still started
            return []
        self._steps.add(step)
        return [{"type": "STEP_STARTED", "stepName": step}]

    def step_completed(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.step_completed`."""
        out = self._close(step)
        self._parts.attempt(step)
        if step in self._steps:
            self._steps.discard(step)
            out.append({"type": "STEP_FINISHED", "stepName": step})
        return out

    def step_retrying(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.step_retrying`."""
        # AG-UI cannot take a message back: the failed attempt's messages are ended and named
        # in a CUSTOM event, for the page to drop (docs/protocols.md, "Retries").
        out = self._close(step)
        out.append({"type": "CUSTOM", "name": "runstream.retry", "value": {
            "step": step, "attempt": data.get("attempt"),
            "next_attempt": data.get("next_attempt"), "error_type": data.get("error_type"),
            "message": data.get("message"), "void": self._parts.attempt(step)}})
        return out

    def step_failed(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.step_failed`."""
        return self._close(step)

    def warning(self, seq: int, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.warning`."""
        return [{"type": "CUSTOM", "name": "runstream.warning", "value": data}]

    def finish(self, seq: int, type_: str, data: dict[str, Any]) -> list[Payload]:
        """See :meth:`ProtocolAdapter.finish`."""
        out = self._close(None) + self._end_tools()
        if type_ == "run.failed":
            out.append({"type": "RUN_ERROR", "message": failure_text(data),
                        "code": str(data.get("error_type") or "Error")})
            return out
        out.extend({"type": "STEP_FINISHED", "stepName": step} for step in sorted(self._steps))
        self._steps.clear()
        end: dict[str, Any] = {"type": "RUN_FINISHED", "threadId": self.thread_id,
                               "runId": self.agui_run_id}
        if type_ == "run.cancelled":
            end["outcome"] = {"type": "cancelled"}
        else:
            end["outcome"] = {"type": "success"}
            usage = _token_usage(self._usage)
            if usage is not None:
                end["usage"] = [usage]
        out.append(end)
        return out


def _token_usage(usage: Any) -> dict[str, int] | None:
    if not isinstance(usage, dict):
        return None
    names = {"prompt_tokens": "inputTokens", "completion_tokens": "outputTokens",
             "total_tokens": "totalTokens"}
    out = {names[key]: value for key, value in usage.items()
           if key in names and isinstance(value, int) and not isinstance(value, bool)}
    return out or None
