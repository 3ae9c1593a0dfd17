"""A run started for an HTTP client: its records go into the event log (see ``_tee``).

A :class:`LiveRun` starts no task: :class:`RunsInFlight` creates it, runs its :meth:`pump` as a
task it owns, and cancels it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from runstream import TERMINAL_EVENT_TYPES, RunHandle

from ._tee import RunWriter
from ._wire import end_data, failure_data

if TYPE_CHECKING:
    from runstream import EventRecord


class ParkedWriter(Protocol):
    """The primary's stream writer while it waits (``_writer.Writer``)."""

    #: Whether it sends only the run's ``step.event`` and terminal records (runstream's
    #: protocol without ``lifecycle``): the others cost it no write.
    events_only: bool

    def write_now(self, record: EventRecord) -> bool:
        """Send ``record``, just appended, from the run's task; False: wake the writer."""
        ...

#: A record that comes less than this many seconds after the last one the run's task took
#: itself (see :meth:`LiveRun._take`) goes to the pump and the client's writer, batched: a
#: paced stream (tokens) is appended and written from the run's task, record by record, with
#: no wake-up of another task; a burst in few batches and writes, not one each.
BURST = 0.001


class LiveRun:
    """Owns a :class:`runstream.RunHandle` and pumps its records into the event log.

    The pump runs as its own task (its owner's), so the log fills (and a reconnecting client
    can replay) whether or not a client is reading; readers wait on the log, and everything
    appended while a reader was busy goes out in its next write. Most records do not go
    through the pump's task: :meth:`_take` appends them from the run's own emit (a plain call,
    ``RunHandle.batches(take=...)``), which saves a task wake-up per event; it leaves to the
    pump what needs waiting (room, a send to the shared log) and the run's terminal record.
    The client that started the run (the *primary* reader, :meth:`hold`) holds the run back
    instead of losing records it has not sent: nothing is appended more than the log's
    ``max_events`` records past the primary's cursor, and the pump waits while those fill its
    ``max_run_bytes`` (the records the run emits meanwhile queue in its bounded channel).
    The run is stopped explicitly: nothing here relies on a generator's ``finally``.
    ``on_release`` is awaited once, as soon as the run has ended for its clients (before its
    terminal record is out).
    """

    __slots__ = ("_direct_at", "_hold", "_parked", "_room", "cancel_reason", "ended", "handle",
                 "notice", "on_release", "writer")

    def __init__(self, handle: RunHandle, writer: RunWriter,
                 on_release: Callable[[LiveRun], Awaitable[None]] | None = None) -> None:
        self.handle = handle
        self.writer = writer
        #: The reason the run is cancelled with if the pump stops it.
        self.cancel_reason = "cancelled"
        self.on_release = on_release
        #: Set once the run has ended for its clients (terminal record out, log ended).
        self.ended = False
        self._hold: int | None = None
        #: The primary's writer while it waits, and its future (see :meth:`park`).
        self._parked: tuple[ParkedWriter, asyncio.Future[None]] | None = None
        #: When the run's task last took a record itself (see :meth:`_take`).
        self._direct_at = 0.0
        self._room: asyncio.Future[None] | None = None
        #: Why replay elsewhere is unavailable (the shared log failed), for the run's client.
        self.notice: str | None = None
        if writer.shared is not None:
            # A reference cycle (this -> writer -> bound method -> this) until _finish breaks
            # it; without a shared log there is none to break.
            writer.on_down = self._shared_log_down

    @property
    def run_id(self) -> str:
        return self.writer.run_id

    def _shared_log_down(self, error: str) -> None:
        # The run's own warning: in its run log (and so its terminal event's ``warnings``),
        # and sent to its client by the stream (``_serve``), which goes on meanwhile.
        self.notice = (f"the shared event log is unavailable ({error}): this stream goes on, "
                       "but other processes cannot replay or follow the run until it is back")
        self.handle.run_log.warnings.append(self.notice)
        # The shared log fails in the tee's own task, maybe after the stream sent the records:
        # wake the stream, which sends the warning now, not with the next record.
        kept = self.writer.local.get_now(self.run_id)
        if kept is not None:
            kept.wake()

    # -- the primary reader ------------------------------------------------------------------
    def hold(self, cursor: int) -> None:
        """The primary reader has sent everything up to ``cursor``."""
        self._hold = cursor
        self.writer.local.hold(self.writer.run_id, cursor)
        room = self._room
        if room is not None and not self._full(cursor):
            self._release_room()

    def park(self, stream: ParkedWriter, waiter: asyncio.Future[None]) -> None:
        """The primary's writer waits on ``waiter`` (from the log): until :meth:`unpark`,
        :meth:`_take` lets ``stream`` write each record from the run's task instead of
        completing ``waiter``."""
        self._parked = (stream, waiter)

    def unpark(self) -> None:
        self._parked = None

    def release(self) -> None:
        """The primary reader is gone: records may be dropped again."""
        self._hold = None
        self.writer.local.hold(self.writer.run_id, None)
        self._release_room()

    def _full(self, hold: int) -> bool:
        return self.writer.local.full(self.writer.run_id, hold)

    def _release_room(self) -> None:
        room = self._room
        if room is not None:
            self._room = None
            if not room.done():
                room.set_result(None)

    async def _wait_room(self) -> None:
        room = self._room = asyncio.get_running_loop().create_future()
        await room

    def _take(self, record: EventRecord) -> bool:
        """Append ``record`` from the run's emit if nothing need wait: whether it did (else
        the pump gets it, and what follows it, in a batch)."""
        type_ = record[2]
        if type_ in TERMINAL_EVENT_TYPES or self.ended:
            return False  # the pump frees the run's slot before its end is out
        parked = self._parked
        if type_ == "step.event" or parked is None or not parked[0].events_only:
            now = time.monotonic()
            if now - self._direct_at < BURST:
                # A burst (a fast producer): this record and the ones right after it go to
                # the pump in a batch, and to the client in one write, as one would one at a
                # time.
                return False
            self._direct_at = now
        # Else a lifecycle record (run.started, step.started ...) that the waiting client is
        # not sent: no write to batch, so it counts for no burst; the token right after it
        # (a run's first, a step's first) goes out from here too, not through the pump's and
        # the writer's tasks, two trips round a busy loop's queue.
        hold = self._hold
        writer = self.writer
        if hold is not None and writer.local.full(writer.run_id, hold):
            return False  # the pump waits for room
        if parked is None or parked[1].done():
            return writer.append_now((record,))
        # The primary's writer waits: append without waking it, and write from here.
        stream, waiter = parked
        if not writer.append_now((record,), waiter):
            return False
        try:
            written = stream.write_now(record)
        except Exception:  # (it hands its errors to the writer) the writer has a look
            written = False
        if not written and not waiter.done():
            waiter.set_result(None)
        return True

    async def _append(self, batch: list[EventRecord]) -> None:
        writer = self.writer
        max_events = writer.local.max_events
        while True:  # never past max_events records ahead of the primary: split the batch
            hold = self._hold
            if hold is None:
                break
            if self._full(hold):
                await self._wait_room()
                continue
            room = max_events - (writer.last_seq - hold)  # > 0 while the log has the run
            if room >= len(batch) or room <= 0:
                break
            writer.append_local(batch[:room])
            await writer.tee(batch[:room])
            batch = batch[room:]
        writer.append_local(batch)
        await writer.tee(batch)
        hold = self._hold
        if hold is not None and self._full(hold):
            await self._wait_room()

    # -- the pump ----------------------------------------------------------------------------
    async def pump(self) -> None:
        """Append the run's records to the log until the run ends, then end it there."""
        writer = self.writer
        # The run's records a batch at a time: no Event envelope and no async-generator hop
        # per event.
        events = self.handle.batches(self._take)
        terminal = False
        local, run_id, tee = writer.local, writer.run_id, writer.shared is not None
        max_events = local.max_events
        pumping = False  # whether an exception comes from appending a batch
        try:
            async for batch in events:
                pumping = True
                if batch[-1][2] in TERMINAL_EVENT_TYPES:
                    # The run has ended for its clients (its record is saved before its
                    # terminal event): its slot is free before they can ask for another.
                    terminal = True
                    await self._release()
                hold = self._hold
                if hold is not None and (writer.last_seq + len(batch) - hold > max_events
                                         or local.full(run_id, hold)):
                    await self._append(batch)  # wait for room or split: drop no unsent record
                else:  # the common case inline: no coroutine per batch
                    writer.append_local(batch)
                    if tee:
                        await writer.tee(batch)
                    if hold is not None and local.full(run_id, hold):
                        await self._wait_room()
                pumping = False
        except Exception as exc:
            if not pumping:  # the run could not start (e.g. its run id is taken)
                if not terminal:
                    terminal = True
                    await self._release()
                    await writer.terminal("run.failed",
                                          end_data(failure_data(exc), self.handle.run_log))
            else:  # an event could not be encoded: the run is cancelled below, with this reason
                self.cancel_reason = f"the event stream failed: {type(exc).__name__}: {exc}"
                if terminal:  # its end was in that batch, after the event: say how it ended
                    terminal = False
                    self.handle.run_log.warnings.append(self.cancel_reason)
        finally:
            # Stop the run explicitly (this task may have been cancelled while it waited for
            # room), then close the iterator so that its own clean-up runs now, not at GC.
            if not self.handle.done():
                await self.handle.cancel(self.cancel_reason)
            await events.aclose()
            await self._finish(None if terminal else self._end_record())

    def _end_record(self) -> tuple[str, dict[str, object]]:
        # RunHandle.cancel() detaches the consumer, so the run's own terminal event never
        # reaches us then: say how it ended here, after everything the client was sent, with
        # the fields of the run's own terminal event.
        log = self.handle.run_log
        if log.status == "completed":
            return "run.completed", end_data({"status": "completed"}, log)
        if log.status == "failed" and log.error is not None:
            return "run.failed", end_data(log.error.event_data(), log)
        return "run.cancelled", end_data({"reason": self.cancel_reason}, log)

    async def _finish(self, end: tuple[str, dict[str, object]] | None) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            self._release_room()
            await self._release()
            if end is not None:
                await self.writer.terminal(*end)
            status: str = self.handle.run_log.status
            if end is not None and status == "running":
                status = end[0].removeprefix("run.")
            await self.writer.end(status)
        finally:
            # The run has ended for its clients: no notice is due any more. Breaking the
            # cycle lets reference counting free the run's objects (its task, run log, this)
            # now: a cycle waits for a full collection of the cyclic GC, seconds at a
            # server's pace, with its memory, and makes that collection work for it.
            self.writer.on_down = None

    async def _release(self) -> None:
        on_release = self.on_release
        if on_release is not None:
            self.on_release = None
            await on_release(self)

    async def abandon(self, reason: str) -> None:
        """End the run for its clients now (``run.cancelled`` with ``reason``) even though it
        has not stopped yet: for a shutdown whose grace period is over."""
        await self._finish(("run.cancelled", end_data({"reason": reason}, self.handle.run_log)))
