"""``RunsInFlight``: the runs and streams runstream-sse serves for one runtime.

It admits new runs (``limits.max_concurrent_runs``: 503 beyond it), owns the live runs (it
creates each :class:`LiveRun` and the task that pumps it, and cancels and awaits them) and ends
everything at shutdown: every run it drives is cancelled, every open stream gets its last event
and ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from runstream import RunHandle, Runtime

from ._binding import RUNS_STATE, state_object
from ._buffer import RunBuffer
from ._live import LiveRun

__all__ = ["RunsInFlight"]

logger = logging.getLogger("runstream.sse")


class RunsInFlight:
    """The runs that :func:`sse_response` started with one runtime and that are still running,
    and the event streams open on them. One per runtime: ``runtime.state.sse_runs``
    (:meth:`for_runtime` makes it on first use).

    - ``len()`` is the number of runs in flight. When the runtime's
      ``limits.max_concurrent_runs`` is set, a request that would start one more run gets
      ``503`` with ``Retry-After`` instead, at once, and starts nothing.
    - :meth:`shutdown` cancels every run with a reason (``"shutdown"``): their clients get
      ``run.cancelled`` and their responses end; from then on new runs get ``503``.

    It belongs to the app's event loop, like the :class:`ReplayBuffer`.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._config = runtime.config
        #: The runs that count against the limit: until their terminal event is out.
        self._runs: set[LiveRun] = set()
        #: Every live run's pump task, by its buffer, until the pump has ended.
        self._pumps: dict[RunBuffer, tuple[LiveRun, asyncio.Task[None]]] = {}
        self._streams: set[asyncio.Task[Any]] = set()
        #: The cancellations :meth:`shutdown` started, until they end.
        self._stopping: set[asyncio.Task[None]] = set()
        #: Set by :meth:`shutdown`: no new runs from then on.
        self.closing = False

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
        """Why a new run cannot start now (None: it can)."""
        if self.closing:
            return "the server is shutting down; retry on another instance or later"
        limit = self.limit
        if limit is not None and len(self._runs) >= limit:
            return (f"too many runs in flight: {len(self._runs)} of at most {limit} "
                    "(limits.max_concurrent_runs); retry shortly")
        return None

    async def shutdown(self, reason: str = "shutdown", grace_period: float = 5.0) -> None:
        """Refuse new runs, cancel every run in flight with ``reason`` and wait, at most
        ``grace_period`` seconds in all, for them to end and for every open stream to send its
        last event. A run still going at the deadline is reported to its clients as cancelled
        anyway, and streams still open then are cut (a client that does not read)."""
        self.closing = True
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
                if live.buffer in self._pumps:
                    live.abandon(reason)
        streams = set(self._streams)
        if streams:
            await asyncio.wait(streams, timeout=max(0.0, deadline - time.monotonic()))
            late = [task for task in streams if not task.done()]
            if late:
                logger.warning("shutdown: cutting %d stream(s) still open after %.1f s",
                               len(late), grace_period)
                for task in late:
                    task.cancel()
                await asyncio.wait(late)

    # -- for the rest of runstream-sse ----------------------------------------------------
    def start(self, handle: RunHandle, buffer: RunBuffer) -> LiveRun:
        """Pump ``handle``'s events into ``buffer`` in a task owned here; the run counts as in
        flight until its terminal event is out."""
        live = LiveRun(handle, buffer, self._runs.discard)
        self._runs.add(live)
        task = asyncio.get_running_loop().create_task(
            self._pump(live), name=f"runstream-sse-pump-{handle.run_id}")
        self._pumps[buffer] = (live, task)
        return live

    async def _pump(self, live: LiveRun) -> None:
        try:
            await live.pump()
        finally:
            self._pumps.pop(live.buffer, None)

    async def cancel(self, live: LiveRun, reason: str = "cancelled") -> None:
        """Cancel ``live``'s run (its clients get ``run.cancelled`` with ``reason``) and wait
        until it and its pump have ended."""
        live.cancel_reason = reason
        await live.handle.cancel(reason)
        entry = self._pumps.get(live.buffer)
        if entry is not None:
            await asyncio.wait({entry[1]})

    async def cancel_run(self, buffer: RunBuffer, reason: str) -> bool:
        """:meth:`cancel` the live run that publishes into ``buffer``; False if none here."""
        entry = self._pumps.get(buffer)
        if entry is None:
            return False
        await self.cancel(entry[0], reason)
        return True

    def _add_stream(self, writer: asyncio.Task[Any]) -> None:
        self._streams.add(writer)
        writer.add_done_callback(self._streams.discard)

