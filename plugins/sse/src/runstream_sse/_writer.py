"""A stream's writer: what it has sent of a run (its cursor), how it frames the next write, and
its idle pings. ``_serve._follow`` drives it; the run's own task writes through it while it
waits (:meth:`Writer.write_now`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final

from runstream import TERMINAL_EVENT_TYPES
from starlette.types import Send

from ._encoder import encode_event, json_dumps, to_bytes
from ._fastpath import no_context, start_send
from ._wire import frame_record

if TYPE_CHECKING:
    from runstream import EventRecord

    from ._feed import Feed
    from ._live import LiveRun


#: Frames sent in one write, in characters (at least one frame): a client that does not read
#: holds at most about this much in the server's socket buffer, not its run's whole log; a
#: client that reads gets one write per batch of events all the same.
WRITE_BYTES: Final = 256 * 1024


#: Frames a write's records in another protocol (``_proto_http.Framer``): its text and how
#: many of the records it covers.
Framer = Callable[[Sequence["EventRecord"]], tuple[str, int]]


def _gap_frame(cursor: int, first: int, missed: int) -> str:
    # No id: the client's Last-Event-ID stays where it was.
    return encode_event(json_dumps({"after": cursor, "next": first, "missed": missed}),
                        event="replay.gap")


def warning_frame(message: str) -> str:
    # No id: it is not one of the run's records (the shared log could not take them).
    return encode_event(json_dumps({"message": message}), event="run.warning")


class Pinger:
    """Completes a waiting writer's future with ``True`` once the stream has been idle for
    ``interval`` seconds. One timer per interval, re-armed from the time of the last write: a
    busy stream never creates one per event."""

    __slots__ = ("interval", "last", "loop", "timer", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        #: When the stream last wrote (loop time).
        self.last = loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.waiter: asyncio.Future[None] | None = None

    def wait(self, waiter: asyncio.Future[None]) -> None:
        self.waiter = waiter
        if self.timer is None:
            self.timer = self.loop.call_at(self.last + self.interval, self._fire,
                                           context=no_context())

    def _fire(self) -> None:
        self.timer = None
        due = self.last + self.interval
        if self.loop.time() + 0.001 < due:  # written since the timer was set: wait the rest
            self.timer = self.loop.call_at(due, self._fire, context=no_context())
            return
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)  # type: ignore[arg-type]  # a ping, not an append
        # Else the writer is busy writing; it sets a new timer when it waits again.

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _frames(run_id: str, records: Sequence[EventRecord], lifecycle: bool) -> tuple[str, int]:
    """The SSE text of the next write: ``records`` from the first, framed, up to
    :data:`WRITE_BYTES`; and how many records it covers."""
    parts: list[str] = []
    size = 0
    n = 0
    terminal = TERMINAL_EVENT_TYPES
    for seq, _ts, type_, step, data in records:
        n += 1
        if type_ == "step.event" or lifecycle or type_ in terminal:
            text = frame_record(run_id, seq, type_, step, data)
            parts.append(text)
            size += len(text)
            if size >= WRITE_BYTES:
                break
    return "".join(parts), n


class Writer:
    """What a stream has sent (``cursor``), for :func:`_follow`'s loop and, while that waits,
    for the run's own task (:meth:`write_now`)."""

    __slots__ = ("cursor", "events_only", "feed", "framer", "handed", "lifecycle", "loop",
                 "pinger", "primary", "send", "send_timeout", "warned")

    def __init__(self, send: Send, feed: Feed, cursor: int, lifecycle: bool,
                 primary: LiveRun | None, send_timeout: float | None, framer: Framer | None,
                 pinger: Pinger | None) -> None:
        self.send = send
        self.feed = feed
        self.cursor = cursor
        self.lifecycle = lifecycle
        self.primary = primary
        self.send_timeout = send_timeout
        self.framer = framer
        #: Sends only step events and the end (see ``_live.ParkedWriter``).
        self.events_only = framer is None and not lifecycle
        self.pinger = pinger
        self.loop = asyncio.get_running_loop()
        self.warned = False
        #: What :meth:`write_now` leaves to the writer: a send to finish, or its error.
        self.handed: Awaitable[None] | Exception | None = None

    def frame(self, records: Sequence[EventRecord]) -> tuple[str, int]:
        """The text of the next write of ``records`` (after the cursor), and how many it
        covers."""
        cursor = self.cursor
        first = records[0][0]
        if self.framer is None:
            text, n = _frames(self.feed.run_id, records, self.lifecycle)
            if first > cursor + 1:
                text = _gap_frame(cursor, first, first - cursor - 1) + text
        else:  # another protocol: no runstream frame (gap, warning) in it
            text, n = self.framer(records)
            self.warned = True
        primary = self.primary
        if primary is not None and primary.notice is not None and not self.warned:
            self.warned = True
            text = warning_frame(primary.notice) + text
        return text, n

    def write_now(self, record: EventRecord) -> bool:
        """Called by the run's task (``LiveRun._take``) while the writer waits, once the run
        appended ``record`` without waking it: send that record from there, at once. Whether
        the writer may go on waiting; else wake it, to write the records itself or to finish
        what it was handed (a send that suspended, or its error). Framed only once it is
        sure to go out here: another protocol's framer keeps state."""
        seq = record[0]
        primary = self.primary
        if (seq == self.cursor + 1 and record[2] == "step.event" and self.framer is None
                and primary is not None and (primary.notice is None or self.warned)):
            # The common case, a token right after the last one sent: the log holds just this
            # record after the cursor (its primary reader's hold keeps it), framed as
            # ``frame`` would, without reading it back.
            try:
                text = frame_record(self.feed.run_id, seq, "step.event", record[3], record[4])
                pending = start_send(self.send, {"type": "http.response.body",
                                                 "body": to_bytes(text), "more_body": True},
                                     self.send_timeout)
            except Exception as exc:  # raised by the writer, as if it had written this itself
                self.handed = exc
                return False
            self.cursor = seq
            if pending is not None:
                self.handed = pending
                return False
            pinger = self.pinger
            if pinger is not None:
                pinger.last = self.loop.time()
            primary.hold(seq)
            return True
        return self._write_since()

    def _write_since(self) -> bool:
        """:meth:`write_now` for any other case: the records after the cursor, read back."""
        records = self.feed.since(self.cursor)
        primary = self.primary
        if not records or primary is None:
            return not records
        last = records[-1]
        if (len(records) > 1 or last[0] != self.cursor + 1 or last[2] in TERMINAL_EVENT_TYPES
                or (primary.notice is not None and not self.warned)):
            return False
        try:
            text, _ = self.frame(records)
            pending = None
            if text:
                pending = start_send(self.send, {"type": "http.response.body",
                                                 "body": to_bytes(text), "more_body": True},
                                     self.send_timeout)
        except Exception as exc:  # raised by the writer, as if it had written this itself
            self.handed = exc
            return False
        self.cursor = last[0]
        if pending is not None:
            self.handed = pending
            return False
        if text and self.pinger is not None:
            self.pinger.last = self.loop.time()
        primary.hold(self.cursor)
        return True
