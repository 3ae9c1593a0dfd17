"""``RunsInFlight``: the runs and streams runstream-sse serves for one runtime.

It admits new runs (``limits.max_concurrent_runs``: 503 beyond it) and ends everything at
shutdown: every run it drives is cancelled, every open stream gets its last event and ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final

from runstream import Runtime

if TYPE_CHECKING:
    from ._live import LiveRun

__all__ = ["RunsInFlight"]

logger = logging.getLogger("runstream.sse")

#: The attribute of a :class:`runstream.Runtime` that holds its :class:`RunsInFlight`.
RUNTIME_ATTRIBUTE: Final = "sse_runs"


class RunsInFlight:
    """The runs that :func:`sse_response` started with one runtime and that are still running,
    and the event streams open on them. One per runtime: ``runtime.sse_runs``
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
        self._runs: set[LiveRun] = set()
        self._streams: set[asyncio.Task[None]] = set()
        #: Set by :meth:`shutdown`: no new runs from then on.
        self.closing = False

    @classmethod
    def for_runtime(cls, runtime: Runtime) -> RunsInFlight:
        """The runtime's ``sse_runs``, made on first use."""
        current = vars(runtime).get(RUNTIME_ATTRIBUTE)
        if not isinstance(current, RunsInFlight):
            current = cls(runtime)
            setattr(runtime, RUNTIME_ATTRIBUTE, current)
        return current

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
            loop = asyncio.get_running_loop()
            cancels = {loop.create_task(live.cancel(reason)) for live in runs}
            await asyncio.wait(cancels, timeout=max(0.0, deadline - time.monotonic()))
            for live in runs:
                # The run ignored its cancellation past the deadline (a task stuck in a thread):
                # its clients still hear how the run ends for them.
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
    def _add_run(self, live: LiveRun) -> None:
        self._runs.add(live)

    def _discard_run(self, live: LiveRun) -> None:
        self._runs.discard(live)

    def _add_stream(self, writer: asyncio.Task[None]) -> None:
        self._streams.add(writer)
        writer.add_done_callback(self._streams.discard)
