"""Writing a run's records to one HTTP client, and noticing when the client goes away."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from runstream import TERMINAL_EVENT_TYPES
from starlette.types import Message, Receive, Send

from ._encoder import PING, encode_event, json_dumps, to_bytes
from ._fastpath import SendTimeout, no_context, send_within, start_send
from ._wire import frame_record

if TYPE_CHECKING:
    from runstream import EventRecord

    from ._feed import Feed
    from ._inflight import RunsInFlight
    from ._live import LiveRun


#: Frames sent in one write, in characters (at least one frame): a client that does not read
#: holds at most about this much in the server's socket buffer, not its run's whole log; a
#: client that reads gets one write per batch of events all the same.
WRITE_BYTES: Final = 256 * 1024


#: Frames a write's records in another protocol (``_proto_http.Framer``): its text and how
#: many of the records it covers.
Framer = Callable[[Sequence["EventRecord"]], tuple[str, int]]


class Outcome(enum.Enum):
    """How a stream ended."""

    #: The run's end was sent and the response completed.
    ENDED = "ended"
    #: The client went away (or the stream was cut at shutdown).
    GONE = "gone"
    #: A write did not complete within the send timeout: the client does not read.
    STALLED = "stalled"


def _gap_frame(cursor: int, first: int, missed: int) -> str:
    # No id: the client's Last-Event-ID stays where it was.
    return encode_event(json_dumps({"after": cursor, "next": first, "missed": missed}),
                        event="replay.gap")


def _warning_frame(message: str) -> str:
    # No id: it is not one of the run's records (the shared log could not take them).
    return encode_event(json_dumps({"message": message}), event="run.warning")


class _Pinger:
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


class _Writer:
    """What a stream has sent (``cursor``), for :func:`_follow`'s loop and, while that waits,
    for the run's own task (:meth:`write_now`)."""

    __slots__ = ("cursor", "feed", "framer", "handed", "lifecycle", "loop", "pinger", "primary",
                 "send", "send_timeout", "warned")

    def __init__(self, send: Send, feed: Feed, cursor: int, lifecycle: bool,
                 primary: LiveRun | None, send_timeout: float | None, framer: Framer | None,
                 pinger: _Pinger | None) -> None:
        self.send = send
        self.feed = feed
        self.cursor = cursor
        self.lifecycle = lifecycle
        self.primary = primary
        self.send_timeout = send_timeout
        self.framer = framer
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
            text = _warning_frame(primary.notice) + text
        return text, n

    def write_now(self) -> bool:
        """Called by the run's task (``LiveRun._take``) while the writer waits, once the run
        appended a record without waking it: send that record from there, at once. Whether
        the writer may go on waiting; else wake it, to write the records itself or to finish
        what it was handed (a send that suspended, or its error). Framed only once it is
        sure to go out here: another protocol's framer keeps state."""
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


async def _follow(send: Send, feed: Feed, cursor: int, lifecycle: bool,
                  ping_interval: float | None, primary: LiveRun | None,
                  send_timeout: float | None, framer: Framer | None = None) -> None:
    """Send the records after ``cursor`` until the run's end, pinging while idle.

    Everything appended since the last write goes out in one write: a fast producer costs one
    ``send`` per batch, not per event. A writer that waits has one future, which the log
    completes when it appends; no task, timer or ``asyncio.wait`` per event. The writer of
    the client that started the run (``primary``) lets the run's own task write while it
    waits (:meth:`_Writer.write_now`): a record then costs no wake-up of this task.
    """
    loop = asyncio.get_running_loop()
    pinger = _Pinger(loop, ping_interval) if ping_interval is not None else None
    writer = _Writer(send, feed, cursor, lifecycle, primary, send_timeout, framer, pinger)
    ping = False
    if primary is not None:
        primary.hold(cursor)
    try:
        while True:
            handed = writer.handed
            if handed is not None:  # by write_now
                writer.handed = None
                if isinstance(handed, Exception):
                    raise handed
                await handed
                if pinger is not None:
                    pinger.last = loop.time()
                ping = False
                if primary is not None:
                    primary.hold(writer.cursor)
                continue
            records = feed.since(writer.cursor)
            if records:
                text, n = writer.frame(records)
                more = n < len(records)
                last = records[n - 1]
                writer.cursor = last[0]
                pending = None
                if text:
                    pending = start_send(send, {"type": "http.response.body",
                                                 "body": to_bytes(text), "more_body": True},
                                          send_timeout)
                    if pending is not None:
                        await pending
                    if pinger is not None:
                        pinger.last = loop.time()
                    ping = False
                if primary is not None:
                    primary.hold(writer.cursor)
                if not more and last[2] in TERMINAL_EVENT_TYPES:
                    return
                if pending is not None or ping or more:
                    continue
                # The send completed without yielding to the loop: nothing can have been
                # appended or ended since ``since()``, so wait at once.
            elif feed.ended:
                return
            elif (primary is not None and primary.notice is not None and not writer.warned
                  and framer is None):
                writer.warned = True
                await send_within(send, {"type": "http.response.body", "more_body": True,
                                         "body": to_bytes(_warning_frame(primary.notice))},
                                  send_timeout)
                continue
            elif ping:
                ping = False
                await send_within(send, {"type": "http.response.body", "body": PING,
                                   "more_body": True}, send_timeout)
                if pinger is not None:
                    pinger.last = loop.time()
                continue
            waiter = feed.waiter()
            if pinger is not None:
                pinger.wait(waiter)
            if primary is None:
                await waiter
            else:
                primary.park(writer, waiter)
                try:
                    await waiter
                finally:
                    primary.unpark()
            ping = waiter.result() is True
    finally:
        if pinger is not None:
            pinger.close()
        if primary is not None:
            primary.release()
        feed.close()


async def _wait_disconnect(receive: Receive) -> None:
    try:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return
    except Exception:  # the connection broke under receive(): as gone as a disconnect
        return


async def _write(send: Send, feed: Feed, cursor: int, lifecycle: bool,
                 ping_interval: float | None, primary: LiveRun | None,
                 send_timeout: float | None, framer: Framer | None) -> Outcome | Exception | None:
    """:func:`_follow`, its end as a value (not an exception that would fail the task group):
    None once the run's end was sent, else STALLED, GONE, or an unexpected error."""
    try:
        await _follow(send, feed, cursor, lifecycle, ping_interval, primary, send_timeout,
                      framer)
    except SendTimeout:
        return Outcome.STALLED
    except OSError:  # ASGI servers may raise it on send to a closed connection
        return Outcome.GONE
    except Exception as exc:  # a bug: raised again by stream_feed, outside the group
        return exc
    return None


async def stream_feed(receive: Receive, send: Send, feed: Feed, cursor: int, *,
                      lifecycle: bool, ping_interval: float | None,
                      primary: LiveRun | None = None, send_timeout: float | None = None,
                      runs: RunsInFlight | None = None, framer: Framer | None = None
                      ) -> Outcome:
    """Stream ``feed`` after ``cursor`` (the response has started) and say how it ended.
    ``primary``: the run this stream's client started (it holds the run back rather than
    miss records). ``framer``: frames the records in another protocol than runstream's.

    The writer runs here, in the request's task; the disconnect watcher is a task of its own
    (Starlette's ``StreamingResponse`` has the same two, the other way round), which cancels
    this one when the client goes, so a disconnect is seen at once even while the writer waits
    for events or for a slow socket; the writer cancels the watcher when it ends. ``runs``
    learns about the stream, so that a shutdown can wait for it (and cut it at its deadline:
    then the stream is GONE). A stalled stream returns without completing the response: the
    client must not take a cut stream for a whole one (the server then closes the connection).
    """
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    stop = _Stop(task)
    finished: asyncio.Future[None] | None = None
    watcher = loop.create_task(_wait_disconnect(receive),
                               name=f"runstream-sse-watch-{feed.run_id}")
    try:
        watcher.add_done_callback(stop.gone, context=no_context())
        if runs is not None:
            finished = loop.create_future()
            runs._add_stream(finished, stop.cut)
        ended = await _write(send, feed, cursor, lifecycle, ping_interval, primary,
                             send_timeout, framer)
    except asyncio.CancelledError:
        if stop.stopped and task.uncancel() <= stop.cancelling:
            return Outcome.GONE  # the client went, or a shutdown cut the stream
        raise
    finally:
        stop.active = False
        watcher.cancel()
        if finished is not None:
            finished.set_result(None)
    if isinstance(ended, Outcome):
        return ended
    if ended is not None:
        raise ended
    try:
        await send_within(send, {"type": "http.response.body", "body": b"", "more_body": False},
                          send_timeout)
    except SendTimeout:
        return Outcome.STALLED
    return Outcome.ENDED


class _Stop:
    """Stops the writer of :func:`stream_feed` (the request's task) when its client goes or a
    shutdown cuts it, by cancelling that task, as ``asyncio.timeout`` does: the cancellation is
    told from one that came from elsewhere by the task's count of them (``cancelling``)."""

    __slots__ = ("active", "cancelling", "stopped", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        #: The task's cancellations before the stream (a cancellation that is not ours).
        self.cancelling = task.cancelling()
        #: Whether the writer still runs (a stop after it is nobody's business).
        self.active = True
        self.stopped = False

    def gone(self, _watcher: object) -> None:
        self.cut()

    def cut(self) -> None:
        if self.active and not self.stopped:
            self.stopped = True
            self.task.cancel()
