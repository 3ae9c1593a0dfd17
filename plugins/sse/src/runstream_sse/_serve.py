"""Writing a run's records to one HTTP client, and noticing when the client goes away."""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING, Any

from runstream import TERMINAL_EVENT_TYPES
from starlette.types import Message, Receive, Send

from ._encoder import PING, to_bytes
from ._fastpath import SendTimeout, no_context, send_within, start_send
from ._writer import Framer, Pinger, Writer, warning_frame

if TYPE_CHECKING:
    from ._feed import Feed
    from ._inflight import RunsInFlight
    from ._live import LiveRun


class Outcome(enum.Enum):
    """How a stream ended."""

    #: The run's end was sent and the response completed.
    ENDED = "ended"
    #: The client went away (or the stream was cut at shutdown).
    GONE = "gone"
    #: A write did not complete within the send timeout: the client does not read.
    STALLED = "stalled"


async def _follow(send: Send, feed: Feed, cursor: int, lifecycle: bool,
                  ping_interval: float | None, primary: LiveRun | None,
                  send_timeout: float | None, framer: Framer | None = None) -> None:
    """Send the records after ``cursor`` until the run's end, pinging while idle.

    Everything appended since the last write goes out in one write: a fast producer costs one
    ``send`` per batch, not per event. A writer that waits has one future, which the log
    completes when it appends; no task, timer or ``asyncio.wait`` per event. The writer of
    the client that started the run (``primary``) lets the run's own task write while it
    waits (:meth:`Writer.write_now`): a record then costs no wake-up of this task.
    """
    loop = asyncio.get_running_loop()
    pinger = Pinger(loop, ping_interval) if ping_interval is not None else None
    writer = Writer(send, feed, cursor, lifecycle, primary, send_timeout, framer, pinger)
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
                                         "body": to_bytes(warning_frame(primary.notice))},
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
