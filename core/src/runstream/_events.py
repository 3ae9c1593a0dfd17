"""The event envelope that every run emits."""

from __future__ import annotations

from typing import Any, Final, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field

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
    def _fast(
        cls, run_id: str, seq: int, ts: float, type: str, step: str | None, data: dict[str, Any]
    ) -> Event:
        # Engine-built events are valid by construction, so skip validation. This is what
        # ``model_construct`` ends up doing for this model, without its per-field loop: a third
        # of its cost, which is most of what ``stream()`` spends per event.
        event = _new(cls)
        _setattr(event, "__dict__", {"v": 1, "run_id": run_id, "seq": seq, "ts": ts,
                                     "type": type, "step": step, "data": data})
        _setattr(event, "__pydantic_fields_set__",
                 {"v", "run_id", "seq", "ts", "type", "step", "data"})
        _setattr(event, "__pydantic_extra__", None)
        _setattr(event, "__pydantic_private__", None)
        return event


_new = object.__new__
_setattr = object.__setattr__
