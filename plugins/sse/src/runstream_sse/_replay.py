"""``ReplayBuffer``: the recent events of runs, for clients that reconnect or follow a run."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol

from runstream import RunIdError, Runtime

from ._binding import default_replay
from ._buffer import ByteBudget, RunBuffer

__all__ = ["ReplayBuffer"]


class RunCanceller(Protocol):
    """Who drives runs published into a replay buffer, and can cancel them (``RunsInFlight``)."""

    async def cancel_run(self, buffer: RunBuffer, reason: str) -> bool:
        """Cancel the run that publishes into ``buffer``; False if none does here."""
        ...


class ReplayBuffer:
    """Keeps the recent events of runs so that clients can replay and follow them.

    Share one instance between :func:`sse_response` (which publishes the runs it streams) and
    :func:`runs_router` (whose ``/runs/{run_id}/events`` replays them); the ``sse`` sink
    publishes runs started elsewhere. Each run keeps its last ``max_events`` events and at most
    ``max_run_bytes`` of them (their framed text; the newest event is always kept); once the
    run has ended they are kept for ``ttl`` seconds, then dropped. At most ``max_runs`` runs,
    and ``max_total_bytes`` of events in all, are kept: past either, the runs that ended first
    are dropped first. Running runs never are: those alone may hold more than
    ``max_total_bytes`` (up to ``max_run_bytes`` each; bound how many run with
    ``limits.max_concurrent_runs``), and the runs that end meanwhile are dropped as they end.

    It belongs to one event loop (the app's): use it from that loop only. Copying it (as
    pydantic does with a sink's fields) returns the same instance: it is a shared service.
    """

    def __init__(self, *, max_events: int = 10_000, ttl: float = 300.0,
                 max_runs: int = 1_000, max_run_bytes: int = 16 * 1024 * 1024,
                 max_total_bytes: int = 256 * 1024 * 1024) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, got {max_events}")
        if not ttl >= 0 or math.isinf(ttl):
            raise ValueError(f"ttl must be a number of seconds >= 0, got {ttl}")
        if max_runs < 1:
            raise ValueError(f"max_runs must be at least 1, got {max_runs}")
        if max_run_bytes < 1:
            raise ValueError(f"max_run_bytes must be at least 1, got {max_run_bytes}")
        if max_total_bytes < 1:
            raise ValueError(f"max_total_bytes must be at least 1, got {max_total_bytes}")
        self.max_events = max_events
        self.ttl = ttl
        self.max_runs = max_runs
        self.max_run_bytes = max_run_bytes
        self.max_total_bytes = max_total_bytes
        self._budget = ByteBudget(max_total_bytes, self._evict)
        self._runs: dict[str, RunBuffer] = {}
        self._ended: dict[str, float] = {}  # run id -> when it ended, in end order
        # One pending sweep timer at most (not one per ended run: at hundreds of runs/s and a
        # 300 s ttl, those piled up as tens of thousands of TimerHandles).
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        #: Who can cancel the runs published here (see :meth:`cancel`).
        self._cancellers: list[RunCanceller] = []

    @classmethod
    def for_runtime(cls, runtime: Runtime) -> ReplayBuffer:
        """The default replay buffer of ``runtime``: ``runtime.state.sse_replay``, made on first
        use. The ``sse`` sinks of the runtime publish into it."""
        return replay_for(runtime, None)

    def __repr__(self) -> str:
        return (f"ReplayBuffer(runs={len(self._runs)}, bytes={self._budget.held}, "
                f"max_events={self.max_events}, ttl={self.ttl}, max_runs={self.max_runs}, "
                f"max_run_bytes={self.max_run_bytes}, "
                f"max_total_bytes={self.max_total_bytes})")

    def __copy__(self) -> ReplayBuffer:
        return self

    def __deepcopy__(self, memo: object) -> ReplayBuffer:
        return self

    def __contains__(self, run_id: object) -> bool:
        self.sweep()
        return run_id in self._runs

    def __len__(self) -> int:
        self.sweep()
        return len(self._runs)

    def run_ids(self) -> list[str]:
        """Ids of the runs whose events are kept, oldest first."""
        self.sweep()
        return list(self._runs)

    def events_kept(self, run_id: str) -> int:
        """How many events of ``run_id`` are kept (0 for an unknown run)."""
        buffer = self._get(run_id)
        return 0 if buffer is None else len(buffer)

    def bytes_kept(self, run_id: str | None = None) -> int:
        """Bytes of events kept: of ``run_id`` (0 for an unknown run), or of every run."""
        if run_id is None:
            self.sweep()
            return self._budget.held
        buffer = self._get(run_id)
        return 0 if buffer is None else buffer.nbytes

    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel a run that :func:`sse_response` started in this process and that is still
        running. Its clients get ``run.cancelled`` with ``reason``. Returns whether it did."""
        buffer = self._runs.get(run_id)
        if buffer is None or buffer.ended:
            return False
        for canceller in self._cancellers:
            if await canceller.cancel_run(buffer, reason):
                return True
        return False

    def sweep(self) -> None:
        """Drop the runs that ended more than ``ttl`` seconds ago (also done on a timer)."""
        ended = self._ended
        if not ended:
            return
        deadline = time.monotonic() - self.ttl
        # Oldest first: look at the head only (no copy of up to ``max_runs`` entries per call;
        # every request calls this).
        while ended:
            run_id = next(iter(ended))
            if ended[run_id] > deadline:
                break
            self._drop(run_id)

    # -- for the rest of runstream-sse ----------------------------------------------------
    def _add_canceller(self, canceller: RunCanceller) -> None:
        """``canceller`` drives runs that it publishes here: :meth:`cancel` asks it."""
        if not any(c is canceller for c in self._cancellers):
            self._cancellers.append(canceller)

    def _get(self, run_id: str) -> RunBuffer | None:
        self.sweep()
        return self._runs.get(run_id)

    def _open(self, run_id: str, owner: str | None = None) -> RunBuffer:
        """A new run's buffer (of ``owner``); RunIdError if the run is already here."""
        self.sweep()
        if run_id in self._runs:
            raise RunIdError(f"run id '{run_id}' is already used by a run in the replay buffer; "
                             "pick another or omit it")
        while len(self._runs) >= self.max_runs and self._ended:
            self._drop(next(iter(self._ended)))
        buffer = RunBuffer(run_id, self.max_events, self._on_end, owner,
                           max_bytes=self.max_run_bytes, budget=self._budget)
        self._runs[run_id] = buffer
        return buffer

    def _on_end(self, buffer: RunBuffer) -> None:
        if self._runs.get(buffer.run_id) is not buffer:
            return
        self._ended[buffer.run_id] = time.monotonic()
        if self.ttl == 0:
            self._drop(buffer.run_id)
            return
        self._evict()
        self._schedule_sweep()

    def _evict(self) -> None:
        """Over ``max_total_bytes``: drop the runs that ended first until back within it."""
        budget = self._budget
        ended = self._ended
        while budget.held > budget.limit and ended:
            self._drop(next(iter(ended)))

    def _schedule_sweep(self) -> None:
        """Release the memory on time even if nobody touches this object again: one timer, due
        when the oldest ended run expires. (A little late rather than early: a timer may fire a
        hair before its time.)"""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - runs end inside a loop
            return
        if (self._timer is not None and self._timer_loop is loop and not loop.is_closed()
                and not self._timer.cancelled()):
            return  # already due no later than the oldest ended run's expiry
        if not self._ended:
            return
        oldest = next(iter(self._ended.values()))
        delay = max(0.0, oldest + self.ttl - time.monotonic()) + 0.01
        self._timer = loop.call_later(delay, self._on_timer)
        self._timer_loop = loop

    def _on_timer(self) -> None:
        self._timer = None
        self.sweep()
        self._schedule_sweep()

    def _drop(self, run_id: str) -> None:
        self._ended.pop(run_id, None)
        buffer = self._runs.pop(run_id, None)
        if buffer is not None:
            buffer.drop()


def replay_for(runtime: Runtime, replay: ReplayBuffer | None) -> ReplayBuffer:
    """``replay``, or the runtime's default one. The first replay buffer used with a runtime
    becomes its default (``runtime.state.sse_replay``), which its ``sse`` sinks publish into."""
    return default_replay(runtime, replay, ReplayBuffer, ReplayBuffer)
