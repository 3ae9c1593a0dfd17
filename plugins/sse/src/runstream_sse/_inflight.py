"""``RunsInFlight``: the runs and streams runstream-sse serves for one runtime.

It admits new runs (``limits.max_concurrent_runs``, through the event log's run slots: 503
beyond it), owns the live runs (it creates each :class:`LiveRun` and the task that pumps it,
and cancels and awaits them: on a cancel signal from the event log, when their client went
away and nobody resumed them within ``reconnect_grace``, at shutdown), knows where each run's
records are read (the local log, or the shared one) and ends everything at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from runstream import EventLog, EventLogError, LoggedRun, MemoryEventLog, RunHandle, Runtime

from ._binding import RUNS_STATE, state_object
from ._fastpath import no_context
from ._feed import Feed, LocalFeed, SharedFeed
from ._live import LiveRun
from ._tee import RunWriter
from ._wire import end_data, failure_data

__all__ = ["RunsInFlight"]

logger = logging.getLogger("runstream.sse")


def local_log(log: EventLog) -> MemoryEventLog:
    """The log this process's readers of its own runs read: ``log`` itself if it is a
    ``memory`` log of this process only, else a private one with its per-run bounds."""
    if isinstance(log, MemoryEventLog) and not log.shared:
        return log
    return MemoryEventLog(ttl=log.ttl, max_events=log.max_events,
                          max_run_bytes=log.max_run_bytes)


class RunsInFlight:
    """The runs that :func:`sse_response` started with one runtime and that are still running,
    and the event streams open on them. One per runtime: ``runtime.state.sse_runs``
    (:meth:`for_runtime` makes it on first use).

    - ``len()`` is the number of runs in flight. When the runtime's
      ``limits.max_concurrent_runs`` is set, a request that would start one more run gets
      ``503`` with ``Retry-After`` instead, at once, and starts nothing.
    - :meth:`shutdown` cancels every run with a reason (``"shutdown"``): their clients get
      ``run.cancelled`` and their responses end; from then on new runs get ``503``.

    It belongs to the app's event loop, like the runtime's event log.

    ``log`` is the runtime's event log (``runtime.event_log``); ``local`` the ``memory`` log
    the runs driven here are read from in this process: ``log`` itself unless it is shared
    (then a private one, and every record goes to both: see ``_tee``).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._config = runtime.config
        self.log: EventLog = runtime.event_log
        self.local = local_log(self.log)
        #: The shared log the runs' records are teed to (None: ``local`` is the only one).
        self.tee: EventLog | None = None if self.local is self.log else self.log
        #: The runs that count against the limit: until their terminal event is out.
        self._runs: set[LiveRun] = set()
        #: Every live run's pump task, by its run id, until the pump has ended.
        self._pumps: dict[str, tuple[LiveRun, asyncio.Task[None]]] = {}
        #: The open streams: each one's end, and how to cut it (see ``_add_stream``).
        self._streams: dict[asyncio.Future[None], Callable[[], None]] = {}
        #: The cancellations started here (signals, graces, shutdown), until they end.
        self._stopping: set[asyncio.Task[None]] = set()
        #: Set by :meth:`shutdown`: no new runs from then on.
        self.closing = False
        self._graces: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = self.log.subscribe_cancel(
            self._on_cancel)

    @classmethod
    def for_runtime(cls, runtime: Runtime) -> RunsInFlight:
        """The runtime's ``runtime.state.sse_runs``, made on first use."""
        return state_object(runtime, RUNS_STATE, RunsInFlight, lambda: cls(runtime))

    def __len__(self) -> int:
        return len(self._runs)

    def __repr__(self) -> str:
        return (f"RunsInFlight(runs={len(self._runs)}, streams={len(self._streams)}, "
                f"limit={self.limit}, closing={self.closing})")

    @property
    def limit(self) -> int | None:
        """``limits.max_concurrent_runs`` of the runtime's config (None: no limit)."""
        return self._config.limits.max_concurrent_runs

    @property
    def streams(self) -> int:
        """How many event streams (live or replay) are open."""
        return len(self._streams)

    def refusal(self) -> str | None:
        """Why a new run cannot start now, before asking for a slot (None: it may)."""
        if self.closing:
            return "the server is shutting down; retry on another instance or later"
        return None

    async def admit(self, run_id: str) -> str | None:
        """Take a run slot for ``run_id`` (``limits.max_concurrent_runs``, counted by the event
        log); why not if it cannot start now (None: it can; release it with the run)."""
        refusal = self.refusal() or await self.runtime.executor.refusal()
        if refusal is not None:
            return refusal
        limit = self.limit
        if limit is None:
            return None
        try:
            if await self.log.acquire_slot(run_id, limit):
                return None
        except EventLogError as exc:
            return f"the event log is unavailable ({exc}); retry shortly"
        return (f"too many runs in flight: {limit} of at most {limit} "
                "(limits.max_concurrent_runs); retry shortly")

    async def release_slot(self, run_id: str) -> None:
        """Free ``run_id``'s run slot (see :meth:`admit`)."""
        if self.limit is not None:
            try:
                await self.log.release_slot(run_id)
            except EventLogError as exc:  # a shared log frees it when its lease runs out
                logger.warning("run %s: could not release its run slot: %s", run_id, exc)

    def reopen(self) -> None:
        """Accept runs again after a :meth:`shutdown` (a lifespan that starts again)."""
        self.closing = False
        if self._unsubscribe is None:
            self._unsubscribe = self.log.subscribe_cancel(self._on_cancel)

    async def shutdown(self, reason: str = "shutdown", grace_period: float = 5.0) -> None:
        """Refuse new runs, cancel every run in flight with ``reason`` and wait, at most
        ``grace_period`` seconds in all, for them to end and for every open stream to send its
        last event. A run still going at the deadline is reported to its clients as cancelled
        anyway, and streams still open then are cut (a client that does not read)."""
        self.closing = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in self._graces:
            task.cancel()
        deadline = time.monotonic() + grace_period
        runs = list(self._runs)
        if runs:
            logger.info("shutdown: cancelling %d run(s) in flight", len(runs))
            # Tasks of their own (not a task group cut at the deadline): a run that ignores its
            # cancellation is ended from outside by runstream after limits.cancel_grace_period,
            # which may come after our deadline; they are owned here until they end.
            loop = asyncio.get_running_loop()
            cancels = set()
            for live in runs:
                task = loop.create_task(self.cancel(live, reason),
                                        name=f"runstream-sse-cancel-{live.handle.run_id}")
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
                cancels.add(task)
            await asyncio.wait(cancels, timeout=max(0.0, deadline - time.monotonic()))
            for live in runs:
                # The run ignored its cancellation past the deadline (a task stuck in a thread):
                # its clients still hear how the run ends for them.
                if live.run_id in self._pumps:
                    await live.abandon(reason)
        streams = set(self._streams)
        if streams:
            await asyncio.wait(streams, timeout=max(0.0, deadline - time.monotonic()))
            late = [finished for finished in streams if not finished.done()]
            if late:
                logger.warning("shutdown: cutting %d stream(s) still open after %.1f s",
                               len(late), grace_period)
                for finished in late:
                    cut = self._streams.get(finished)
                    if cut is not None:
                        cut()
                await asyncio.wait(late)
        if self.tee is not None:
            await self.local.close()  # the private local log's expiry timer

    # -- for the rest of runstream-sse ----------------------------------------------------
    async def open_run(self, run_id: str, pipeline: str, owner: str | None,
                       meta: dict[str, Any] | None = None) -> RunWriter:
        """Record a new run in the event log(s), with ``meta``; RunIdError if its id is
        taken."""
        writer = RunWriter(run_id, self.local, self.tee, pipeline=pipeline, owner=owner,
                           meta=meta)
        await writer.create()
        return writer

    async def fail(self, writer: RunWriter, error: BaseException) -> None:
        """End a run that could not start with ``run.failed`` for ``error``."""
        await self.release_slot(writer.run_id)
        await writer.terminal("run.failed", end_data(failure_data(error), None))
        await writer.end("failed")

    def start(self, handle: RunHandle, writer: RunWriter) -> LiveRun:
        """Pump ``handle``'s records into the event log in a task owned here; the run counts
        as in flight until its terminal event is out."""
        if self.runtime.executor.remote:
            writer.shared = None  # its worker writes the shared log; this process reads it
        live = LiveRun(handle, writer, self._released)
        self._runs.add(live)
        task = asyncio.get_running_loop().create_task(
            self._pump(live), name=f"runstream-sse-pump-{handle.run_id}")
        self._pumps[live.run_id] = (live, task)
        return live

    async def _released(self, live: LiveRun) -> None:
        self._runs.discard(live)
        await self.release_slot(live.run_id)

    async def _pump(self, live: LiveRun) -> None:
        try:
            await live.pump()
        finally:
            self._pumps.pop(live.run_id, None)
            if live.writer.down is not None:  # the shared log missed the end: retry
                self._own(self._end_later(live.writer), f"runstream-sse-end-{live.run_id}",
                          self._graces)

    async def _end_later(self, writer: RunWriter) -> None:
        # Every second, until the log's ttl (past it the run is expired there anyway) or
        # shutdown: the shared log's readers wait for the end meanwhile.
        deadline = time.monotonic() + writer.local.ttl
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)  # a timer, not a synchronisation
            if await writer.retry_end():
                logger.info("run %s: its end reached the shared event log", writer.run_id)
                return
        logger.warning("run %s: the shared event log stayed unavailable (%s): other processes "
                       "never saw the run end", writer.run_id, writer.down)

    async def cancel(self, live: LiveRun, reason: str = "cancelled") -> None:
        """Cancel ``live``'s run (its clients get ``run.cancelled`` with ``reason``) and wait
        until it and its pump have ended."""
        live.cancel_reason = reason
        await live.handle.cancel(reason)
        entry = self._pumps.get(live.run_id)
        if entry is not None:
            await asyncio.wait({entry[1]})

    def live(self, run_id: str) -> LiveRun | None:
        """The live run this process drives with this id, if any."""
        entry = self._pumps.get(run_id)
        return None if entry is None else entry[0]

    def _on_cancel(self, run_id: str, reason: str) -> None:
        # A cancel signal from the event log (POST /runs/{id}/cancel, the CLI, any process).
        live = self.live(run_id)
        if live is not None:
            self._own(self.cancel(live, reason), f"runstream-sse-cancel-{run_id}")

    def _own(self, coro: Any, name: str, tasks: set[asyncio.Task[None]] | None = None
             ) -> None:
        tasks = self._stopping if tasks is None else tasks
        task = asyncio.get_running_loop().create_task(coro, name=name)
        tasks.add(task)
        task.add_done_callback(tasks.discard, context=no_context())

    def disconnected(self, live: LiveRun, reason: str) -> None:
        """The client that started ``live`` (``on_disconnect="cancel"``) went away: cancel the
        run now with ``reconnect_grace`` 0, else once the grace is over if no client (in any
        process) reads it then."""
        grace = self.runtime.reconnect_grace
        if grace == 0:
            self._own(self.cancel(live, reason), f"runstream-sse-cancel-{live.run_id}")
        else:
            self._own(self._grace(live, reason, grace), f"runstream-sse-grace-{live.run_id}",
                      self._graces)

    async def _grace(self, live: LiveRun, reason: str, grace: float) -> None:
        # A resumed client may leave again: check every ``grace`` seconds while the run goes on.
        while not live.ended:
            await asyncio.sleep(grace)  # a timer, not a synchronisation
            if live.ended:
                return
            try:
                readers = await self.log.readers(live.run_id)
            except EventLogError as exc:
                logger.warning("run %s: cannot count its readers (%s)", live.run_id, exc)
                readers = 0
            if readers == 0:
                await self.cancel(live, f"{reason} (not resumed within {grace:g} s)")
                return

    async def add_reader(self, run_id: str) -> None:
        """A client started streaming ``run_id`` (see :meth:`runstream.EventLog.readers`)."""
        try:
            await self.log.add_reader(run_id)
        except EventLogError as exc:
            logger.warning("run %s: cannot count its reader (%s)", run_id, exc)

    async def remove_reader(self, run_id: str) -> None:
        """A client stopped streaming ``run_id``."""
        try:
            await self.log.remove_reader(run_id)
        except EventLogError as exc:
            logger.warning("run %s: cannot count its reader (%s)", run_id, exc)

    async def find(self, run_id: str) -> LoggedRun | None:
        """What the event log knows of a run: the local one first, then the shared one
        (:class:`runstream.EventLogError` if that fails)."""
        info = await self.local.get_run(run_id)
        if info is None and self.tee is not None:
            info = await self.tee.get_run(run_id)
        return info

    def feed(self, run_id: str, cursor: int) -> Feed:
        """Where a stream reads ``run_id``'s records after ``cursor`` (see :meth:`find`)."""
        kept = self.local.get_now(run_id)
        if kept is not None:
            return LocalFeed(run_id, kept)
        # A run of the shared log; or one the local log forgot since find() (then its read
        # raises RunNotFoundError and the stream just ends).
        return SharedFeed(self.tee or self.log, run_id, cursor)

    def _add_stream(self, finished: asyncio.Future[None], cut: Callable[[], None]) -> None:
        """A stream is open until ``finished``; ``cut()`` ends it at a shutdown's deadline."""
        self._streams[finished] = cut
        finished.add_done_callback(self._stream_done, context=no_context())

    def _stream_done(self, finished: asyncio.Future[None]) -> None:
        self._streams.pop(finished, None)
