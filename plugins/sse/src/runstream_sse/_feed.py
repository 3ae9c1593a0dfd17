"""Where a stream's writer reads a run's records: a *feed* over an event log.

- :class:`LocalFeed`: a run in this process's local ``memory`` log (the runs this process
  drives, and the runs the ``sse`` sink appends to a ``memory`` log). The writer reads the
  log's kept records after its cursor and waits on one future per wait: no task and no timer
  per event.
- :class:`SharedFeed`: a run driven by another process, read from a shared event log with
  :meth:`runstream.EventLog.read` in a task of the feed's own, whose batches the writer takes
  in the same way.

Both hand out the run's records, :data:`runstream.EventRecord` tuples, oldest first; a writer
tells a gap (records the log no longer keeps) from the first seq it gets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from runstream import EventLog, EventLogError, RunNotFoundError

if TYPE_CHECKING:
    from runstream import EventRecord


logger = logging.getLogger("runstream.sse")


class KeptRun(Protocol):
    """A run as :meth:`runstream.MemoryEventLog.get_now` returns it."""

    last_seq: int
    ended_at: float | None

    def since(self, cursor: int) -> list[EventRecord]: ...

    def waiter(self) -> asyncio.Future[None]: ...


class Feed(Protocol):
    """What a writer reads: records after a cursor, a way to wait for more, and the end."""

    run_id: str

    def since(self, cursor: int) -> Sequence[EventRecord]:
        """The records after ``cursor`` that the feed has now (oldest first)."""
        ...

    def waiter(self) -> asyncio.Future[None]:
        """A future the next records (or the end) complete; the writer may complete it
        itself (a ping) or cancel it."""
        ...

    @property
    def ended(self) -> bool:
        """No more records will come after those :meth:`since` gives."""
        ...

    def close(self) -> None:
        """The writer is done with the feed."""
        ...


class LocalFeed:
    """A run of this process's ``memory`` log."""

    __slots__ = ("run", "run_id")

    def __init__(self, run_id: str, run: KeptRun) -> None:
        self.run_id = run_id
        self.run = run

    def since(self, cursor: int) -> list[EventRecord]:
        return self.run.since(cursor)

    def waiter(self) -> asyncio.Future[None]:
        return self.run.waiter()

    @property
    def ended(self) -> bool:
        return self.run.ended_at is not None

    def close(self) -> None:
        pass


class SharedFeed:
    """A run read from a shared event log, after ``after``, until it ends.

    A task of the feed's own iterates :meth:`runstream.EventLog.read` and keeps what it got
    until the writer has sent it; an error of the log ends the feed (the stream ends without
    the run's end, and the client reconnects: then the router answers 503 while the log is
    unavailable). :meth:`close` stops the task.
    """

    def __init__(self, log: EventLog, run_id: str, after: int) -> None:
        self.run_id = run_id
        self.error: BaseException | None = None
        self._records: list[EventRecord] = []
        self._done = False
        self._waiters: list[asyncio.Future[None]] = []
        self._task = asyncio.get_running_loop().create_task(
            self._read(log, after), name=f"runstream-sse-feed-{run_id}")

    async def _read(self, log: EventLog, after: int) -> None:
        try:
            async for batch in log.read(self.run_id, after):
                self._records.extend(batch)
                self._wake()
        except (EventLogError, RunNotFoundError) as exc:
            logger.warning("run %s: reading its events stopped: %s", self.run_id, exc)
            self.error = exc
        finally:
            self._done = True
            self._wake()

    def since(self, cursor: int) -> list[EventRecord]:
        records = self._records
        if records and records[0][0] <= cursor:  # sent: forget them
            start = 0
            while start < len(records) and records[start][0] <= cursor:
                start += 1
            del records[:start]
        return list(records)

    def waiter(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._done:
            waiter.set_result(None)
            return waiter
        self._waiters = [w for w in self._waiters if not w.done()]
        self._waiters.append(waiter)
        return waiter

    @property
    def ended(self) -> bool:
        return self._done

    def close(self) -> None:
        self._task.cancel()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
