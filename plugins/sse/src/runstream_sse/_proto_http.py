"""A run's stream in another protocol than runstream's own: the writer's framer, the options
kept with the run for a resume, and the stream of a run that could not start.

The writer (``_serve``) frames records itself for runstream's protocol (no cost added there);
for the others it calls a :class:`Framer`, which encodes through the protocol's adapter. A
resumed stream (``Last-Event-ID: N``) reads the run's records from seq 1 (an adapter's state
depends on everything before N) and its framer sends only the frames above N.

The adapter's options (an OpenAI model, ``include_usage``, AG-UI's thread and run ids) are the
request's: they are kept with the run in the event log (``meta``), so that whichever process
serves the resume makes the frames the first connection would have.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._adapters import ADAPTERS, make_adapter
from ._encoder import json_frame, to_bytes
from ._wire import end_data, failure_data
from ._writer import WRITE_BYTES

if TYPE_CHECKING:
    from runstream import EventRecord, LoggedRun
    from starlette.types import Send

    from ._protocols import ProtocolAdapter

__all__ = ["PROTOCOLS"]

#: Every protocol ``sse_response(protocol=...)`` speaks.
PROTOCOLS: Final = ("runstream", *sorted(ADAPTERS))

#: Records encoded per call to the adapter while one write fills up (see :class:`Framer`).
_SLICE: Final = 256


def check_protocol(protocol: str) -> str:
    """``protocol`` if runstream-sse speaks it, else ``ValueError`` naming the ones it does."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; protocols: {', '.join(PROTOCOLS)}")
    return protocol


def run_meta(protocol: str, options: Mapping[str, Any]) -> dict[str, Any] | None:
    """What is kept with a run started in ``protocol`` (None for runstream's own)."""
    if protocol == "runstream":
        return None
    return {"protocol": protocol, "options": dict(options)}


def stored_options(info: LoggedRun | None, protocol: str) -> dict[str, Any]:
    """The adapter options kept with the run if it was started in ``protocol`` (a resume in
    another protocol gets that protocol's defaults)."""
    meta = {} if info is None else info.meta
    options = meta.get("options")
    if meta.get("protocol") == protocol and isinstance(options, dict):
        return dict(options)
    return {}


class AdapterFramer:
    """Frames a writer's next records through ``adapter``, skipping the frames of records up
    to ``after`` (a resume). Returns the text of one write (about ``limit`` characters at
    most: a client that does not read holds no more than that in the socket buffer) and how
    many records it covers."""

    __slots__ = ("adapter", "after", "limit")

    def __init__(self, adapter: ProtocolAdapter, after: int, limit: int) -> None:
        self.adapter = adapter
        self.after = after
        self.limit = limit

    def __call__(self, records: Sequence[EventRecord]) -> tuple[str, int]:
        encode = self.adapter.encode
        if len(records) <= _SLICE:
            return encode(records, after=self.after), len(records)
        parts: list[str] = []
        size = n = 0
        while n < len(records) and size < self.limit:
            text = encode(records[n:n + _SLICE], after=self.after)
            parts.append(text)
            size += len(text)
            n += _SLICE
        return "".join(parts), min(n, len(records))


def framer(protocol: str, run_id: str, options: Mapping[str, Any], after: int = 0
           ) -> AdapterFramer | None:
    """The framer of a stream in ``protocol`` (None: runstream's own, framed by the writer)."""
    if protocol == "runstream":
        return None
    return AdapterFramer(make_adapter(protocol, run_id=run_id, **options), after, WRITE_BYTES)


async def send_failure(send: Send, run_id: str, protocol: str, options: Mapping[str, Any],
                       error: BaseException) -> None:
    """The whole stream of a run that could not be started nor logged: its ``run.failed``,
    in ``protocol``."""
    record = (1, time.time(), "run.failed", None, end_data(failure_data(error), None))
    frames = framer(protocol, run_id, options)
    if frames is None:
        text = json_frame(record[4], id=1, event="run.failed")
    else:
        text, _ = frames([record])
    await send({"type": "http.response.body", "body": to_bytes(text), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
