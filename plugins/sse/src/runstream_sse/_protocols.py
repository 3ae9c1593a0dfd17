"""What every protocol adapter shares: runstream records in, another protocol's SSE frames out.

An adapter is a pure, stateful encoder of one run: it reads the run's records
(:data:`runstream.EventRecord`, ``(seq, ts, type, step, data)``) in seq order, lifecycle records
included, and answers the SSE text a client of that protocol reads. One record may make several
frames, or none; the last frame of a record carries ``id: <its seq>``, the frames before it no
id (an SSE client keeps the last id it read). So the id a client reads always means "every frame
of records up to this seq", and a cut between two frames of one record loses none of them.

Resume: frames depend only on the run id, the request's options and the records, never on the
clock or on randomness (message and part ids are made from the run id and a seq). So a reconnect
with ``Last-Event-ID: N`` is served by a fresh adapter fed the run's records from seq 1 with
``encode(records, after=N)``: the same frames the first connection got, minus the ones it read.

Task events are recognised by their shape (docs/events.md): an event whose ``type`` is known but
whose fields have the wrong types is treated as an unknown shape, which each protocol carries
through its extension point or drops, so a task can never make a broken frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final

from runstream import TERMINAL_EVENT_TYPES, EventRecord

from ._encoder import json_dumps

__all__ = ["ProtocolAdapter"]

#: A frame's data: a JSON object, or text sent as it is: :data:`DONE`, or JSON text made by
#: :func:`json_dumps` (one line), which the hot paths build from a template.
Payload = dict[str, Any] | str

#: The ``[DONE]`` sentinel of OpenAI's and Vercel's streams.
DONE: Final = "[DONE]"

_FIELDS: Final[Mapping[str, tuple[tuple[str, type | tuple[type, ...]], ...]]] = {
    "chunk": (("text", str),),
    "reasoning": (("text", str),),
    "tool_call_start": (("id", str), ("name", str)),
    "tool_call_delta": (("id", str), ("arguments", str)),
    "tool_call_end": (("id", str), ("name", str), ("arguments", str)),
    "tool_result": (("id", str),),
    "data": (("name", str),),
    "status": (("status", str),),
    "done": (),
}


def event_shape(data: Mapping[str, Any]) -> str:
    """The shape of a task event (docs/events.md), or ``"other"`` when its ``type`` is not one
    of the shapes or a field has the wrong type."""
    kind = data.get("type")
    if kind == "chunk":  # the common case, first
        return "chunk" if isinstance(data.get("text"), str) else "other"
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return "other"
    for name, types in fields:
        if not isinstance(data.get(name), types):
            return "other"
    if kind == "tool_result" and "result" not in data:
        return "other"
    return str(kind)


#: The finish reasons of docs/events.md (OpenAI's).
FINISH_REASONS: Final = frozenset({"stop", "length", "tool_calls", "content_filter"})


def finish_reason(data: Mapping[str, Any], previous: str | None) -> str | None:
    """A ``done`` event's ``finish_reason`` if it is one of :data:`FINISH_REASONS`, else
    ``previous`` (a task's malformed value never reaches a frame)."""
    reason = data.get("finish_reason")
    return reason if isinstance(reason, str) and reason in FINISH_REASONS else previous


def failure_text(data: Mapping[str, Any]) -> str:
    """``"ErrorType: message"`` of a ``run.failed`` record's data (its message is already what a
    client may read: runstream masks server details before it records one)."""
    error_type = data.get("error_type") or "Error"
    message = data.get("message")
    return f"{error_type}: {message}" if message else str(error_type)


def add_usage(total: dict[str, Any] | None, usage: object) -> dict[str, Any] | None:
    """``total`` plus a ``done`` event's ``usage`` (the integer counts added up, over the steps
    that called a model); ``usage`` that is not a dict is ignored."""
    if not isinstance(usage, dict):
        return total
    total = dict(total or {})
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
    return total or None


class OpenParts:
    """The parts (text or reasoning messages) open in each step, and the ids of everything a
    step's current attempt made, which a ``step.retrying`` voids."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], str] = {}
        self._made: dict[str, list[str]] = {}

    def get(self, kind: str, step: str) -> str | None:
        """The id of the open part of ``kind`` in ``step``, if any."""
        return self._open.get((kind, step))

    def start(self, kind: str, step: str, part_id: str) -> None:
        """Note a part opened in ``step``."""
        self._open[(kind, step)] = part_id
        self.note(step, part_id)

    def opened(self) -> list[tuple[str, str]]:
        """The open parts, ``(kind, id)``, oldest first."""
        return [(key[0], part) for key, part in self._open.items()]

    def note(self, step: str, part_id: str) -> None:
        """Note an id made by ``step``'s current attempt."""
        self._made.setdefault(step, []).append(part_id)

    def close(self, step: str | None = None) -> list[tuple[str, str]]:
        """Forget the open parts of ``step`` (of every step for None): ``(kind, id)`` pairs."""
        keys = [key for key in self._open if step is None or key[1] == step]
        return [(key[0], self._open.pop(key)) for key in keys]

    def attempt(self, step: str) -> list[str]:
        """The ids ``step``'s current attempt made, forgotten (a new attempt starts)."""
        return self._made.pop(step, [])


def _frame(seq: int | None, payload: Payload) -> str:
    # json_dumps escapes every line break a reader may split on: one data line per frame.
    data = payload if isinstance(payload, str) else json_dumps(payload)
    if seq is None:
        return f"data: {data}\n\n"
    return f"id: {seq}\ndata: {data}\n\n"


class ProtocolAdapter:
    """Base of the protocol adapters: dispatches each record to a method that answers the
    payloads of its frames. Subclasses set :attr:`name` and :attr:`headers` and override the
    methods of the records they speak; the defaults make no frame."""

    #: The protocol's name, as ``sse_response(..., protocol=...)`` takes it.
    name: ClassVar[str] = ""

    def __init__(self, *, run_id: str) -> None:
        self.run_id = run_id
        #: Headers a response in this protocol sends, besides runstream-sse's stream headers.
        self.headers: dict[str, str] = {}
        self._opened = False
        self._finished = False
        self._resumed = False

    @property
    def finished(self) -> bool:
        """Whether the run's terminal record was encoded (later records make no frame)."""
        return self._finished

    def encode(self, records: Iterable[EventRecord], *, after: int = 0) -> str:
        """The SSE text of ``records`` (the next records of the run, in seq order); only the
        frames of records with a seq above ``after`` are returned, the others still update the
        adapter's state (resume after ``Last-Event-ID: after``)."""
        out: list[str] = []
        for record in records:
            if self._finished:
                break
            seq = record[0]
            payloads: list[Payload] = []
            if seq > after and self._opened and after > 0 and not self._resumed:
                # The first frames this client gets after a cut: the protocol may need to say
                # again what the client's new reader has not seen (an open message).
                self._resumed = True
                payloads = self.resume()
            payloads += self._payloads(record)
            if seq > after and payloads:
                # Only a record's last frame names its seq: a client cut off between two frames
                # of one record resumes before that record, and gets all of its frames again.
                out.extend(_frame(None, payload) for payload in payloads[:-1])
                out.append(_frame(seq, payloads[-1]))
        return "".join(out)

    def _payloads(self, record: EventRecord) -> list[Payload]:
        seq, ts, type_, step, data = record
        out: list[Payload] = []
        if not self._opened:
            self._opened = True
            out.extend(self.open(seq, ts))
        name = step or ""
        if type_ == "step.event":
            out.extend(self.task_event(seq, name, event_shape(data), data))
        elif type_ == "step.started":
            out.extend(self.step_started(seq, name, data))
        elif type_ == "step.completed":
            out.extend(self.step_completed(seq, name, data))
        elif type_ == "step.retrying":
            out.extend(self.step_retrying(seq, name, data))
        elif type_ == "step.failed":
            out.extend(self.step_failed(seq, name, data))
        elif type_ in ("run.warning", "run.restarted"):
            out.extend(self.warning(seq, data))
        elif type_ in TERMINAL_EVENT_TYPES:
            self._finished = True
            out.extend(self.finish(seq, type_, data))
        return out

    # Overridden by the protocols: each answers the payloads of its frames.

    def open(self, seq: int, ts: float) -> list[Payload]:
        """The frames that open the stream, sent with the run's first record."""
        return []

    def resume(self) -> list[Payload]:
        """The frames a resumed stream (``encode(..., after=N)``, N > 0) starts with, sent with
        the first record above N: what a new reader needs to read the rest (the default:
        nothing)."""
        return []

    def task_event(self, seq: int, step: str, shape: str, data: dict[str, Any]
                   ) -> list[Payload]:
        """A task's event of shape ``shape`` (see :func:`event_shape`)."""
        return []

    def step_started(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """A ``step.started`` record (one per attempt)."""
        return []

    def step_completed(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """A ``step.completed`` record."""
        return []

    def step_retrying(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """A ``step.retrying`` record: the attempt's events are void."""
        return []

    def step_failed(self, seq: int, step: str, data: dict[str, Any]) -> list[Payload]:
        """A ``step.failed`` record (``run.failed`` follows)."""
        return []

    def warning(self, seq: int, data: dict[str, Any]) -> list[Payload]:
        """A ``run.warning`` record."""
        return []

    def finish(self, seq: int, type_: str, data: dict[str, Any]) -> list[Payload]:
        """The terminal record (``run.completed``, ``run.failed`` or ``run.cancelled``)."""
        return []
