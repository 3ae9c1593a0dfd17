"""From chat completion chunks to runstream task events (the shapes of docs/events.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk

__all__ = ["REASONING_FIELDS", "StreamState"]

#: Delta fields that carry reasoning text, as servers send them outside OpenAI's schema:
#: vLLM and DeepSeek ``reasoning_content``, OpenRouter and Ollama ``reasoning``.
REASONING_FIELDS = ("reasoning_content", "reasoning")


@dataclass
class _ToolCall:
    index: int
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "index": self.index, "name": self.name,
                "arguments": "".join(self.arguments)}


@dataclass
class StreamState:
    """What a stream has said so far; :meth:`feed` turns one chunk into events."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCall] = field(default_factory=dict)
    open_calls: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    generating: bool = False

    def feed(self, chunk: ChatCompletionChunk) -> list[dict[str, Any]]:
        """The events for one chunk, in order."""
        events: list[dict[str, Any]] = []
        if chunk.usage is not None:
            self.usage = chunk.usage.model_dump(exclude_none=True)
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # n > 1 is not supported: the first choice is the answer
            delta = choice.delta
            extra = delta.model_extra or {}
            for name in REASONING_FIELDS:
                piece = extra.get(name)
                if isinstance(piece, str) and piece:
                    self._generating(events)
                    self.reasoning.append(piece)
                    events.append({"type": "reasoning", "text": piece})
                    break
            if delta.content:
                self._generating(events)
                self.text.append(delta.content)
                events.append({"type": "chunk", "text": delta.content})
            for call in delta.tool_calls or ():
                self._generating(events)
                known = self.tool_calls.get(call.index)
                function = call.function
                if known is None:
                    known = _ToolCall(index=call.index, id=call.id or f"call_{call.index}",
                                      name=(function.name if function else None) or "")
                    self.tool_calls[call.index] = known
                    self.open_calls.append(call.index)
                    events.append({"type": "tool_call_start", "id": known.id,
                                   "index": known.index, "name": known.name})
                if function is not None and function.arguments:
                    known.arguments.append(function.arguments)
                    events.append({"type": "tool_call_delta", "id": known.id,
                                   "index": known.index, "arguments": function.arguments})
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
                events.extend(self.close_calls())
        return events

    def _generating(self, events: list[dict[str, Any]]) -> None:
        if not self.generating:
            self.generating = True
            events.append({"type": "status", "status": "generating"})

    def close_calls(self) -> list[dict[str, Any]]:
        """``tool_call_end`` for every call still open (at finish, or when the stream ends)."""
        events = [{"type": "tool_call_end", **self.tool_calls[i].as_dict()}
                  for i in self.open_calls]
        self.open_calls.clear()
        return events

    @property
    def full_text(self) -> str:
        """The answer's text so far."""
        return "".join(self.text)

    def done(self) -> dict[str, Any]:
        """The ``done`` event."""
        return {"type": "done", "full_text": self.full_text,
                "finish_reason": self.finish_reason, "usage": self.usage}

    def outputs(self) -> dict[str, Any]:
        """Everything a step may return."""
        return {"full_text": self.full_text, "finish_reason": self.finish_reason,
                "usage": self.usage, "reasoning": "".join(self.reasoning),
                "tool_calls": [call.as_dict() for call in self.tool_calls.values()]}
