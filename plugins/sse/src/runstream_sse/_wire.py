"""How runstream events look on the wire: frames, headers, resume ids, their OpenAPI
(docs/sse.md)."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, Final

from runstream import (
    RUN_ID_PATTERN,
    TERMINAL_EVENT_TYPES,
    ErrorInfo,
    Event,
    RunIdError,
    RunLog,
    public_error_message,
)

from ._encoder import json_frame

logger = logging.getLogger("runstream.sse")

#: Headers of every event stream. ``Content-Encoding: identity`` makes compression middleware
#: (Starlette's GZipMiddleware of any version, and most others) leave the stream alone: a
#: compressor buffers, and a buffered event stream is a broken one.
STREAM_HEADERS: Final[dict[str, str]] = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "Content-Encoding": "identity",
}

_EVENT_ID = re.compile(r"[0-9]{1,18}")
_RUN_ID = re.compile(RUN_ID_PATTERN)


def is_default(type_: str) -> bool:
    """Whether a stream without ``lifecycle`` sends events of this type (``run.restarted``:
    the client must know that the events after it start the run over)."""
    return type_ in ("step.event", "run.restarted") or type_ in TERMINAL_EVENT_TYPES


def frame_event(event: Event) -> str:
    """An event of a run as one SSE frame, ``id`` = its ``seq``.

    ``step.event``: unnamed, data = the task's dict; a step inside a composite node (its path
    has a dot, e.g. ``fan.a.llm``) gets a ``step`` field with that path added, unless its dict
    has one, so that a client can tell interleaved branches apart. Every other type is a named
    event whose data is the event's data, plus ``step`` for ``step.*`` events and ``run_id``
    for ``run.started``.
    """
    return frame_record(event.run_id, event.seq, event.type, event.step, event.data)


def frame_record(run_id: str, seq: int, type_: str, step: str | None,
                 data: dict[str, Any]) -> str:
    """:func:`frame_event` of an event's fields, without the :class:`runstream.Event`."""
    if type_ == "step.event":
        if step is not None and "." in step and "step" not in data:
            return json_frame({**data, "step": step}, id=seq)
        return json_frame(data, id=seq)
    if type_.startswith("step.") and "step" not in data:
        data = {"step": step, **data}
    elif type_ == "run.started":
        data = {**data, "run_id": run_id}
    return json_frame(data, id=seq, event=type_)


def failure_data(error: BaseException, step: str | None = None) -> dict[str, object]:
    """The data of a ``run.failed`` event for an error that happened outside any step (the run
    could not start, an event could not be framed). The client gets a message without server
    details (:func:`runstream.public_error_message`); the full error goes to the server log."""
    if not isinstance(error, RunIdError):
        logger.error("a run failed outside its steps: %s: %s", type(error).__name__, error)
    data = ErrorInfo.from_exception(error, step).event_data()
    data["message"] = public_error_message(error)
    return data


def end_data(data: dict[str, Any], log: RunLog | None) -> dict[str, Any]:
    """``data`` of a terminal event that runstream-sse makes itself (the run could not report
    its own end to it), with the fields runstream's own terminal events carry, from the run
    log: ``duration_ms`` (0 for a run that never started) and, if the log has any,
    ``warnings``. A client sees the same fields wherever the terminal event was made."""
    if log is None:
        data["duration_ms"] = 0.0
        return data
    ended = log.ended if log.ended is not None else datetime.now(log.started.tzinfo)
    data["duration_ms"] = round(max(0.0, (ended - log.started).total_seconds()) * 1000, 3)
    if log.warnings:
        data["warnings"] = list(log.warnings)
    return data


def parse_event_id(value: str, source: str) -> int:
    """A resume position (``Last-Event-ID`` or ``?after=``): an event id, a whole number."""
    if not _EVENT_ID.fullmatch(value):
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise ValueError(
            f"{source} must be the id of an event of this stream, a whole number such as 12; "
            f"got {shown!r}")
    return int(value)


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a valid run id (as runstream checks it), else RunIdError."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise RunIdError(
            f"invalid run id {run_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '..')")
    return run_id


def sse_openapi_response(description: str = "The run's events as Server-Sent Events.",
                         ) -> dict[str, Any]:
    """The OpenAPI response object of an event stream, for a route's ``responses={200: ...}``
    (with ``response_class=SSEResponse``), as OpenAPI 3.1 describes a stream: the ``schema``
    of ``text/event-stream`` is that of one event (``data`` is always a JSON object)."""
    event = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": {"type": "string", "description": "Absent for a task's dict; else a "
                                                       "runstream event type, e.g. run.completed"},
            "id": {"type": "string", "description": "The event's seq in its run."},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "contentSchema": {"type": "object"}},
            "retry": {"type": "integer"},
        },
    }
    return {"description": description, "content": {"text/event-stream": {"schema": event}}}
