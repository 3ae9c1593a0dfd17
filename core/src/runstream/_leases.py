"""Telling runs whose process died from runs still going, across processes and machines.

A run's record names the process that runs it (``RunLog.process``, ``host:pid:start``). Two
signs say that process has died:

- it ran on this host and its pid is gone, or is a zombie, or belongs to a newer process;
- its **lease** ran out: while a process has runs in flight it renews a lease in the run log
  store every third of ``limits.process_lease`` seconds. A process killed with ``kill -9`` stops
  renewing, so its lease ends at most ``process_lease`` seconds later, whichever host or container
  looks at it (a restart under a new hostname cannot check pids at all).

Whatever runtime shares the store marks such runs ``abandoned``: once before its first run (or
when the application calls :meth:`Runtime.recover_abandoned`), and again when the lease of a run
it could not decide on is due to run out. Stores that keep no leases
(:meth:`RunLogStore.renew_lease` returns False) fall back to the pid check alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._errors import RunstreamError
from ._owner import current_owner, owner_is_alive
from ._runlog import RunLog, now

if TYPE_CHECKING:
    from ._config import Limits
    from ._store import RunLogStore

logger = logging.getLogger("runstream")


class Leases:
    """The process lease of one runtime (on its ``store``, renewed while ``runs_in_flight()``),
    and its search for abandoned runs. Owned by the runtime: :meth:`aclose` stops its timers and
    tasks."""

    def __init__(self, store: RunLogStore, limits: Limits,
                 runs_in_flight: Callable[[], int]) -> None:
        self._store = store
        self._limits = limits
        self._runs_in_flight = runs_in_flight
        self._ttl = limits.process_lease
        self._renewed_at: float | None = None  # loop time of the last renewal
        self._supported = True
        self._timer: asyncio.TimerHandle | None = None
        self._recheck: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: The renewal in flight: the runs that start meanwhile wait for it, not one each.
        self._renewing: asyncio.Task[None] | None = None

    # -- this process's lease ------------------------------------------------------------------
    async def keep(self) -> None:
        """Called as a run starts: make sure this process holds a fresh lease, and keep it
        renewed while the runtime has runs in flight."""
        if not self._supported:
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop or loop.is_closed():
            self._reset(loop)
        if self._renewed_at is None or loop.time() - self._renewed_at > self._ttl / 3:
            # Shielded: a run cancelled while it waits does not stop the others' renewal.
            await asyncio.shield(self._renewal())
        if self._timer is None and self._supported:
            self._timer = loop.call_later(self._ttl / 3, self._tick)

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        # A runtime used from another event loop (each Pipeline.execute() runs its own): timers
        # of a closed loop never fire, so start over in this one.
        self._loop = loop
        self._timer = self._recheck = None
        self._renewed_at = None
        self._tasks = set()
        self._renewing = None

    def _renewal(self) -> asyncio.Task[None]:
        """The renewal in flight, or a new one: a thousand runs that start while the lease is
        due make one write to the store, not a thousand."""
        renewing = self._renewing
        if renewing is None or renewing.done():
            assert self._loop is not None
            renewing = self._renewing = self._loop.create_task(self._renew())
            self._tasks.add(renewing)
            renewing.add_done_callback(self._tasks.discard)
        return renewing

    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        until = now() + timedelta(seconds=self._ttl)
        try:
            async with asyncio.timeout(self._limits.store_timeout):
                self._supported = await self._store.renew_lease(current_owner(), until)
        except Exception as exc:  # the store is down: runs go on; others may mark them later
            logger.warning("could not renew this process's lease in the run log store: %s: %s",
                           type(exc).__name__, exc)
            return
        self._renewed_at = loop.time()

    def _tick(self) -> None:
        self._timer = None
        if not self._runs_in_flight():
            return  # no run to vouch for: the lease may run out
        self._renewal()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            self._timer = loop.call_later(self._ttl / 3, self._tick)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task: asyncio.Task[None] = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- other processes' runs -----------------------------------------------------------------
    async def recover(self) -> list[str]:
        """Mark the runs left ``running`` by dead processes as ``abandoned``; returns their ids.
        Runs whose process's lease has not run out yet are looked at again when it does."""
        store = self._store
        leases = await store.leases()
        marked: list[str] = []
        recheck: datetime | None = None
        for summary in await store.list_runs(limit=100_000, status="running"):
            try:
                log = await store.get(summary.run_id)
            except RunstreamError:
                continue
            verdict = self._verdict(log, leases)
            if isinstance(verdict, datetime):
                recheck = verdict if recheck is None else min(recheck, verdict)
            elif verdict is not None:
                log.status = "abandoned"
                log.ended = log.ended or now()
                log.warnings.append(f"the process that ran it ({log.process}) ended without "
                                    f"finishing the run ({verdict}); marked abandoned")
                # Only if it is still running: another runtime may have marked it meanwhile
                # (workers that start together), or its process ended it after all.
                if await store.save_if(log, status="running"):
                    marked.append(log.run_id)
        if marked:
            logger.warning("marked %d run(s) of dead processes abandoned: %s", len(marked),
                           ", ".join(marked[:20]) + (" ..." if len(marked) > 20 else ""))
        if recheck is not None:
            self._schedule_recheck(recheck)
        return marked

    def _verdict(self, log: RunLog, leases: dict[str, datetime] | None
                 ) -> str | datetime | None:
        """Why the run's process is dead (a reason), when to look again (a time), or None
        (alive, or it cannot be told)."""
        process = log.process
        if not process or process == current_owner():
            return None
        alive = owner_is_alive(process)
        if alive is False:
            return "its process is gone"
        if alive is True or leases is None:
            return None
        until = leases.get(process)
        if until is None:
            # It never held a lease (it died before its first renewal, or ran a runstream
            # that kept none): give it one lease period from its start.
            until = log.started + timedelta(seconds=self._ttl)
        if until <= now():
            return "its lease ran out"
        return until

    def _schedule_recheck(self, when: datetime) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._reset(loop)
        if self._recheck is not None:
            self._recheck.cancel()
        delay = max(0.0, (when - now()).total_seconds()) + 0.05
        self._recheck = loop.call_later(delay, self._spawn_recover)

    def _spawn_recover(self) -> None:
        self._recheck = None
        self._spawn(self._recover_logged())

    async def _recover_logged(self) -> None:
        try:
            await self.recover()
        except RunstreamError as exc:
            logger.warning("could not check for abandoned runs: %s", exc)

    async def aclose(self) -> None:
        for handle in (self._timer, self._recheck):
            if handle is not None:
                handle.cancel()
        self._timer = self._recheck = None
        loop = asyncio.get_running_loop()
        tasks = [t for t in self._tasks if not t.done() and t.get_loop() is loop]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
