"""``memory`` event log (the default): runs' recent records in this process only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import Field

from ._errors import RunIdError, RunNotFoundError
from ._eventlog import CancelHandler, EventLog, LoggedRun
from ._events import TERMINAL_EVENT_TYPES
from ._kept import _Run, _State, record_size

if TYPE_CHECKING:
    from ._events import EventRecord

__all__ = ["MemoryEventLog"]

#: A run that ended this many seconds ago has its records packed (``_packed``) at the next end
#: of a run: its own clients have read its end by then (a client that started the run and holds
#: it, until it lets go), and a replay unpacks them.
PACK_AFTER: Final = 0.25


class MemoryEventLog(EventLog):
    """Keeps the recent records of runs in this process: replay and follow work for clients of
    this process only, and cancel signals and run slots reach this process only.

    Besides the per-run bounds it keeps at most ``max_runs`` runs and ``max_total_bytes`` of
    records in all: past either, the runs that ended first are forgotten first (running runs
    never are).
    """

    max_runs: int = Field(default=1_000, ge=1, description="Runs kept (ended ones go first).")
    max_total_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1,
        description="Bytes of records kept for all runs; past it the runs that ended first are "
                    "forgotten first.")

    #: Not a pydantic private attribute (nor a class variable): ``model_post_init`` sets it in
    #: the instance's ``__dict__``, so that the hot path reads it as a plain attribute (a
    #: pydantic private attribute costs a ``__getattr__`` call, about 4 us, on every access).
    _s: ClassVar[_State]

    def model_post_init(self, context: object, /) -> None:
        object.__setattr__(self, "_s", _State())

    # -- writing ---------------------------------------------------------------------------
    async def create(self, run_id: str, *, pipeline: str, owner: str | None,
                     meta: Mapping[str, Any] | None = None) -> None:
        self.sweep()
        if run_id in self._s.runs:
            raise RunIdError(f"run id '{run_id}' is already used by a run in the event log; "
                             "pick another or omit it")
        while len(self._s.runs) >= self.max_runs and self._s.ended:
            self._drop(next(iter(self._s.ended)))
        run_id = str(run_id)  # new_run_id's str subclass is one more object for the GC
        self._s.runs[run_id] = _Run(run_id, pipeline, owner, self.max_events, meta,
                                    self._s.unpacked)

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
        self.append_now(run_id, records)

    def append_now(self, run_id: str, records: Sequence[EventRecord], *,
                   but: asyncio.Future[None] | None = None) -> None:
        """:meth:`append` without a coroutine (this log never waits). ``but``: a reader's
        future (from ``get_now(run_id).waiter()``) that this append does not complete: its
        reader is told some other way (runstream-sse's writer that the run itself wrote to)."""
        run = self._s.runs.get(run_id)
        if run is None or run.ended_at is not None or not records:
            return
        kept, sizes = run.records, run.sizes
        max_events = self.max_events
        grow = 0
        last: EventRecord | None = None
        try:
            for record in records:
                size = record_size(record)  # raises for a record that is not JSON
                if len(kept) == max_events:
                    grow -= sizes[0]  # the deque drops it as the new one comes in
                kept.append(record)
                sizes.append(size)
                grow += size
                last = record
        finally:  # the records before one that raised are in, and counted
            if last is not None:
                self._appended(run, last, grow, but)

    def _appended(self, run: _Run, last: EventRecord, grow: int,
                  but: asyncio.Future[None] | None) -> None:
        run.last_seq = last[0]
        run.nbytes += grow
        self._s.held += grow
        if run.nbytes > self.max_run_bytes:
            self._trim(run)
        if last[2] in TERMINAL_EVENT_TYPES:
            run.status = last[2].removeprefix("run.")
        if self._s.held > self.max_total_bytes:
            self._evict()
        run.wake(but)

    def _trim(self, run: _Run) -> None:
        kept, sizes = run.records, run.sizes
        hold = run.hold
        freed = 0
        while len(kept) > 1 and run.nbytes - freed > self.max_run_bytes:
            if hold is not None and kept[0][0] > hold:
                break  # a held reader has not read it yet
            kept.popleft()
            freed += sizes.popleft()
        run.nbytes -= freed
        self._s.held -= freed

    async def end(self, run_id: str, status: str) -> None:
        run = self._s.runs.get(run_id)
        if run is None or run.ended_at is not None:
            return
        run.status = status
        run.ended_at = time.monotonic()
        self._s.slots.discard(run_id)
        run.wake()
        if self.ttl == 0:
            self._drop(run_id)
            return
        self._s.ended[run.run_id] = self._s.unpacked[run.run_id] = run.ended_at
        self._evict()
        self._pack_ended(run.ended_at - PACK_AFTER)
        self._schedule_sweep()

    def _pack_ended(self, before: float) -> None:
        """Pack the records of the runs that ended before ``before`` (one at each end: the
        oldest first)."""
        unpacked, runs = self._s.unpacked, self._s.runs
        while unpacked:
            run_id = next(iter(unpacked))
            if unpacked[run_id] > before:
                return
            del unpacked[run_id]
            run = runs.get(run_id)
            if run is not None and run.hold is None:
                run.pack()

    # -- reading ---------------------------------------------------------------------------
    async def read(self, run_id: str, after: int = 0, *, follow: bool = True
                   ) -> AsyncIterator[list[EventRecord]]:
        self.sweep()
        run = self._s.runs.get(run_id)
        if run is None:
            raise RunNotFoundError(f"no run '{run_id}' in the event log")
        cursor = after
        while True:
            batch = run.since(cursor)
            if batch:
                cursor = batch[-1][0]
                yield batch
                if batch[-1][2] in TERMINAL_EVENT_TYPES:
                    return
                continue
            if run.ended_at is not None or not follow or self._s.runs.get(run_id) is not run:
                return
            await run.waiter()

    def hold(self, run_id: str, cursor: int | None) -> None:
        """A reader of this process that must miss nothing (the client that started the run)
        is at ``cursor``: the byte bound no longer drops the records after it (None: it left).
        The writer waits while :meth:`full` says so, and never appends more than
        ``max_events`` records past ``cursor``."""
        run = self._s.runs.get(run_id)
        if run is not None:
            run.hold = cursor
            if cursor is None and run.packed is None:
                if run.nbytes > self.max_run_bytes:
                    self._trim(run)
                if run.ended_at is not None:  # its client let go of it: packed later
                    self._s.unpacked.setdefault(run_id, time.monotonic())

    def full(self, run_id: str, cursor: int) -> bool:
        """Whether the records after ``cursor`` fill the run's bounds, by count or by bytes."""
        run = self._s.runs.get(run_id)
        if run is None:
            return False
        if run.last_seq - cursor >= self.max_events:
            return True
        # Trimming stops at the first record after a hold: past the byte bound with that one
        # oldest, every record kept is after the cursor.
        records = run.records
        return run.nbytes >= self.max_run_bytes and bool(records) and records[0][0] > cursor

    async def get_run(self, run_id: str) -> LoggedRun | None:
        run = self.get_now(run_id)
        return None if run is None else run.info()

    def get_now(self, run_id: str) -> _Run | None:
        self.sweep()
        return self._s.runs.get(run_id)

    # -- signals, slots, readers -----------------------------------------------------------
    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        run = self._s.runs.get(run_id)
        if run is None or run.status != "running":
            return False
        for handler in list(self._s.handlers):
            handler(run_id, reason)
        return True

    def subscribe_cancel(self, handler: CancelHandler) -> Callable[[], None]:
        self._s.handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._s.handlers:
                self._s.handlers.remove(handler)

        return unsubscribe

    async def acquire_slot(self, run_id: str, limit: int) -> bool:
        slots = self._s.slots
        if run_id in slots:
            return True
        if len(slots) >= limit:
            return False
        slots.add(run_id)
        return True

    async def release_slot(self, run_id: str) -> None:
        self._s.slots.discard(run_id)

    async def slots_in_use(self) -> int:
        return len(self._s.slots)

    async def add_reader(self, run_id: str) -> None:
        run = self._s.runs.get(run_id)
        if run is not None:
            run.readers += 1

    async def remove_reader(self, run_id: str) -> None:
        run = self._s.runs.get(run_id)
        if run is not None and run.readers > 0:
            run.readers -= 1

    async def readers(self, run_id: str) -> int:
        run = self._s.runs.get(run_id)
        return 0 if run is None else run.readers

    async def close(self) -> None:
        if self._s.timer is not None:
            self._s.timer.cancel()
            self._s.timer = None
        for run in self._s.runs.values():
            run.wake()

    # -- bounds and expiry -----------------------------------------------------------------
    def run_ids(self) -> list[str]:
        """Ids of the runs kept, oldest first."""
        self.sweep()
        return list(self._s.runs)

    def bytes_kept(self, run_id: str | None = None) -> int:
        """Bytes of records kept: of ``run_id`` (0 for an unknown run), or of every run."""
        self.sweep()
        if run_id is None:
            return self._s.held
        run = self._s.runs.get(run_id)
        return 0 if run is None else run.nbytes

    def sweep(self) -> None:
        """Forget the runs that ended more than ``ttl`` seconds ago (also done on a timer)."""
        ended = self._s.ended
        if not ended:
            return
        deadline = time.monotonic() - self.ttl
        while ended:
            run_id = next(iter(ended))
            if ended[run_id] > deadline:
                break
            self._drop(run_id)

    def _evict(self) -> None:
        ended = self._s.ended
        while self._s.held > self.max_total_bytes and ended:
            self._drop(next(iter(ended)))

    def _drop(self, run_id: str) -> None:
        self._s.ended.pop(run_id, None)
        self._s.unpacked.pop(run_id, None)
        run = self._s.runs.pop(run_id, None)
        if run is not None:
            self._s.held -= run.nbytes
            run.records.clear()
            run.sizes.clear()
            run.packed = None
            run.nbytes = 0
            if run.ended_at is None:
                run.ended_at = time.monotonic()
            run.wake()

    def _schedule_sweep(self) -> None:
        """One timer, due when the oldest ended run expires: memory is released on time even if
        nobody touches the log again."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - runs end inside a loop
            return
        timer = self._s.timer
        if (timer is not None and self._s.timer_loop is loop and not loop.is_closed()
                and not timer.cancelled()) or not self._s.ended:
            return
        oldest = next(iter(self._s.ended.values()))
        delay = max(0.0, oldest + self.ttl - time.monotonic()) + 0.01
        self._s.timer = loop.call_later(delay, self._on_timer)
        self._s.timer_loop = loop

    def _on_timer(self) -> None:
        self._s.timer = None
        self.sweep()
        self._schedule_sweep()
