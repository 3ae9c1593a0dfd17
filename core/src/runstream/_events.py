"""The event envelope that every run emits."""

from __future__ import annotations

from typing import Any, Final, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field

from ._hotpath import new_model
from ._json import model_json

__all__ = ["EVENT_TYPES", "TERMINAL_EVENT_TYPES", "Event", "EventRecord", "EventType"]

EventType = Literal[
    "run.started",
    "step.started",
    "step.event",
    "step.completed",
    "step.failed",
    "step.retrying",
    "run.completed",
    "run.failed",
    "run.cancelled",
    "run.warning",
    "run.restarted",
]

EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)
#: Every run ends with exactly one of these.
TERMINAL_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {"run.completed", "run.failed", "run.cancelled"}
)


#: One event of a run as :meth:`runstream.RunHandle.batches` hands it over: the tuple
#: ``(seq, ts, type, step, data)``, the fields of :class:`Event` without its envelope. A plain
#: tuple, not a named one: building a named tuple per event would cost a third of what an event
#: costs in ``execute_streaming()``.
EventRecord: TypeAlias = tuple[int, float, str, "str | None", dict[str, Any]]


class Event(BaseModel):
    """One thing that happened in a run.

    ``seq`` counts from 1 within a run and is the SSE ``id``. For ``step.event`` the ``data`` is the
    task's dict, verbatim; for ``run.failed`` and ``step.failed`` it holds ``error_type``,
    ``message`` and ``step``; ``step.retrying`` follows the events of a failed attempt that will be
    run again (``attempt``, ``next_attempt``, ``delay``, ``error_type``, ``message``): a client
    that shows a step's partial output resets it there.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    v: int = 1
    run_id: str
    seq: int = Field(ge=1)
    ts: float = Field(description="Seconds since the epoch when the event was emitted.")
    type: str
    step: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        """The event as one line of JSON text, whatever ``data`` holds: values JSON cannot hold
        are written as their ``repr``, NaN as ``null``, a lone surrogate as U+FFFD."""
        return model_json(self)

    @classmethod
    def from_record(cls, run_id: str, record: EventRecord) -> Event:
        """The envelope of one of ``run_id``'s records (see :meth:`RunHandle.batches`).

        Engine-built records are valid by construction, so nothing is validated again: this is
        the cheap way to make an :class:`Event` per event (see ``_hotpath.new_model``)."""
        seq, ts, type_, step, data = record
        return new_model(cls, {"v": 1, "run_id": run_id, "seq": seq, "ts": ts, "type": type_,
                               "step": step, "data": data}, set(_FIELDS))


_FIELDS = frozenset({"v", "run_id", "seq", "ts", "type", "step", "data"})
