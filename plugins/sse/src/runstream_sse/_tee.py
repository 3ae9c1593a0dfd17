"""Writing one run's records: to the local ``memory`` log, and on to a shared one (a tee).

The readers of a run this process drives read the local log (one copy: with the ``memory``
event log it *is* the runtime's). With a shared log (``runtime.event_log.shared``) every batch
goes on to it too, for the other processes, by one send at a time per run, with
``EventLog.append_soon`` (no task of the run's own: the ``redis`` log queues it for its writer
and calls back): while one append is on its way the run goes on, and what it emits meanwhile
goes out as the next append once that one succeeded (so the shared log never gets a later
batch before an earlier one). The run waits for the send only when ``AHEAD`` records wait behind it.
The shared log failing never stops the run nor its own client: the records wait here (at most
``max_events``, the oldest dropped first) and go out with the next batch once the log is back;
the run gets a warning that replay elsewhere is unavailable meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from runstream import EventLog, EventLogError, MemoryEventLog, RunIdError

from ._fastpath import no_context

if TYPE_CHECKING:
    from runstream import EventRecord


logger = logging.getLogger("runstream.sse")

#: Records a run may emit ahead of its send to the shared log before it waits for that send.
AHEAD = 4096


class RunWriter:
    """Appends one run's records to ``local`` and tees them to ``shared`` (None: no tee)."""

    __slots__ = ("_batch", "_created", "_idle", "_pending", "_sending", "down", "last_seq",
                 "local", "meta", "on_down", "owner", "pipeline", "run_id", "shared", "status")

    def __init__(self, run_id: str, local: MemoryEventLog, shared: EventLog | None, *,
                 pipeline: str, owner: str | None, meta: dict[str, Any] | None = None) -> None:
        self.run_id = run_id
        #: Kept with the run in both logs (``EventLog.create(meta=...)``), if any.
        self.meta = meta
        self.local = local
        self.shared = shared
        self.pipeline = pipeline
        self.owner = owner
        #: The seq of the last record appended.
        self.last_seq = 0
        #: Why the shared log is unavailable (None: it is fine, or there is none).
        self.down: str | None = None
        #: Called with the error once each time the shared log becomes unavailable.
        self.on_down: Callable[[str], None] | None = None
        #: How the run ended (None: it has not).
        self.status: str | None = None
        self._created = False
        self._pending: list[EventRecord] = []
        #: Whether a send to the shared log is due or in flight.
        self._sending = False
        #: The records of the send in flight.
        self._batch: list[EventRecord] = []
        #: Completed once no send is in flight (made by whoever waits for that).
        self._idle: asyncio.Future[None] | None = None

    async def create(self) -> None:
        """Record the run in both logs: RunIdError if either has it already (nothing is
        left in the local one then). The shared log failing is not an error (see the module)."""
        await self._create(self.local)
        if self.shared is None:
            return
        try:
            await self._create(self.shared)
        except RunIdError:
            await self.local.end(self.run_id, "failed")
            raise
        except EventLogError as exc:
            self._failed(exc)
        else:
            self._created = True

    async def _create(self, log: EventLog) -> None:
        # Without meta, as before: an event log written before ``meta`` still works.
        if self.meta:
            await log.create(self.run_id, pipeline=self.pipeline, owner=self.owner,
                             meta=self.meta)
        else:
            await log.create(self.run_id, pipeline=self.pipeline, owner=self.owner)

    def append_local(self, records: Sequence[EventRecord],
                     but: asyncio.Future[None] | None = None) -> None:
        """Append to the local log only (see :meth:`tee` for the rest); ``but``: see
        :meth:`runstream.MemoryEventLog.append_now`."""
        try:
            self.local.append_now(self.run_id, records, but=but)
        except Exception:  # a record that is not JSON: those before it are in
            kept = self.local.get_now(self.run_id)
            if kept is not None and kept.last_seq > self.last_seq:
                # ... and go on to the shared log too, or its readers would find them missing
                # (a gap before the run's end) where the run's own client got them.
                taken = [record for record in records if record[0] <= kept.last_seq]
                self.last_seq = kept.last_seq
                if self.shared is not None and taken:
                    self._pending.extend(taken)
                    if not self._sending and self.down is None:
                        self._sending = True
                        asyncio.get_running_loop().call_soon(self._send, context=no_context())
            raise
        self.last_seq = records[-1][0]

    def append_now(self, records: Sequence[EventRecord],
                   but: asyncio.Future[None] | None = None) -> bool:
        """:meth:`append` if it need not wait (no send to the shared log to wait for, the log
        not down): whether it did (nothing is done if not). A record that is not JSON raises,
        with nothing done for it."""
        shared = self.shared
        pending = self._pending
        if shared is not None and (self.down is not None or (
                self._sending and len(pending) + len(records) >= AHEAD)):
            return False
        self.append_local(records, but)
        if shared is not None:
            pending.extend(records)
            if not self._sending:
                self._sending = True
                asyncio.get_running_loop().call_soon(self._send, context=no_context())
        return True

    async def tee(self, records: Sequence[EventRecord]) -> None:
        """Hand ``records`` (already in the local log) to the shared log, after any that
        waited for it: sent one append at a time (see the module)."""
        if self.shared is None:
            return
        pending = self._pending
        pending.extend(records)
        sending = self._sending
        if self.down is not None:
            if len(pending) > self.local.max_events:
                del pending[:len(pending) - self.local.max_events]
            if not sending:
                await self._flush()
            return
        if not sending:
            self._sending = True
            asyncio.get_running_loop().call_soon(self._send, context=no_context())
        elif len(pending) >= AHEAD:  # back-pressure: the run waits for its send
            await self.sent()

    def _send(self) -> None:
        # Called soon after a record came (what the run emits until then joins it): what
        # waits goes out as one append; _sent has what waited meanwhile sent, and so on until
        # nothing waits (or the log fails).
        shared = self.shared
        assert shared is not None
        if not self._pending or self.down is not None:
            self._done()
            return
        batch, self._pending = self._pending, []
        self._batch = batch
        try:
            shared.append_soon(self.run_id, batch, self._sent)
        except Exception as exc:  # (a log's bug) as a failed append: the records wait
            self._sent(exc)

    def _sent(self, error: BaseException | None) -> None:
        batch, self._batch = self._batch, []
        if error is not None:
            batch.extend(self._pending)  # they wait again, in order
            self._pending = batch
            self._failed(error if isinstance(error, EventLogError) else EventLogError(
                f"event log: append failed: {type(error).__name__}: {error}"))
        if self._pending and self.down is None:
            asyncio.get_running_loop().call_soon(self._send, context=no_context())
        else:
            self._done()

    def _done(self) -> None:
        self._sending = False
        idle, self._idle = self._idle, None
        if idle is not None and not idle.done():
            idle.set_result(None)

    async def sent(self) -> None:
        """Wait until the send in flight (if any) is over, with what waited behind it."""
        if self._sending:
            idle = self._idle
            if idle is None:
                idle = self._idle = asyncio.get_running_loop().create_future()
            await asyncio.wait((idle,))  # (a waiter cancelled leaves it to the others)

    async def append(self, records: Sequence[EventRecord]) -> None:
        self.append_local(records)
        await self.tee(records)

    async def terminal(self, type_: str, data: dict[str, Any]) -> None:
        """Append a terminal record made here (the run could not report its own end)."""
        await self.append([(self.last_seq + 1, time.time(), type_, None, data)])

    async def end(self, status: str) -> None:
        """The run has ended: in both logs. If the shared log is down, :attr:`down` stays set:
        call :meth:`retry_end` until it returns True."""
        self.status = status
        await self.local.end(self.run_id, status)
        if self.shared is not None and not await self.retry_end():
            logger.warning("run %s: ended while the shared event log is unavailable (%s): "
                           "its end goes to it once it is back", self.run_id, self.down)

    async def retry_end(self) -> bool:
        """Hand the shared log what it missed and the run's end; whether it took them."""
        shared, status = self.shared, self.status
        if shared is None or status is None:
            return True
        await self.sent()
        if self._pending or self.down is not None:
            await self._flush()
            if self.down is not None:
                return False
        try:
            await shared.end(self.run_id, status)
        except EventLogError as exc:
            self._failed(exc)
            return False
        return True

    async def _flush(self) -> None:
        shared = self.shared
        assert shared is not None
        try:
            if not self._created:
                with contextlib.suppress(RunIdError):  # created before the connection broke
                    await self._create(shared)
                self._created = True
            if self._pending:
                await shared.append(self.run_id, self._pending)
        except EventLogError as exc:
            self._failed(exc)
            return
        self._pending = []
        if self.down is not None:
            logger.info("run %s: the shared event log is back", self.run_id)
            self.down = None

    def _failed(self, exc: EventLogError) -> None:
        first = self.down is None
        self.down = str(exc)
        if first:
            logger.warning("run %s: the shared event log failed (%s): its client goes on; "
                           "replay on other processes is unavailable until it is back",
                           self.run_id, exc)
            if self.on_down is not None:
                self.on_down(self.down)
