"""Task threads: the bounded pool that runs sync tasks, apart from the loop's default executor.

A sync task cannot be interrupted: when its run is cancelled, its thread stays busy until the
function returns. Run on the event loop's default executor (``min(32, cpus + 4)`` threads, 6 on
a 2-core machine), a few such tasks would starve everything else that uses it: a store's
``asyncio.to_thread``, a library's DNS lookups, the next sync step. So sync tasks get a pool of
their own, bounded by ``limits.task_threads``, that counts the threads held by steps of cancelled
runs: a step that has to wait for a thread says why, and a stuck step is logged once.

The threads are daemon threads: a function that never returns does not keep the process from
exiting (a ``ThreadPoolExecutor`` joins its threads at exit, for ever if one is stuck). Idle
threads end after ``idle_timeout`` seconds, so a quiet process holds none.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__: list[str] = []  # internal: reached as Runtime.task_threads

logger = logging.getLogger("runstream")


class Job:
    """One sync call: its future, and which run and step it belongs to."""

    __slots__ = ("args", "cancelled", "fn", "future", "reported", "run_id", "step")

    def __init__(self, run_id: str, step: str, fn: Callable[..., Any],
                 args: tuple[Any, ...]) -> None:
        self.future: Future[Any] = Future()
        self.fn = fn
        self.args = args
        self.run_id = run_id
        self.step = step
        #: The step was cancelled (its run cancelled, or its timeout hit) while this ran.
        self.cancelled = False
        self.reported = False


class TaskThreads:
    """A bounded pool of daemon threads for the sync tasks of one runtime."""

    def __init__(self, size: int, *, idle_timeout: float = 30.0,
                 name: str = "runstream-task") -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._idle_timeout = idle_timeout
        self._name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        #: Threads waiting for a job (a job put in the queue takes one: see submit), and jobs
        #: queued while every thread was busy (the next thread to finish takes one).
        self._idle = 0
        self._queued = 0
        self._running: set[Job] = set()
        self._closed = False
        self._count = 0

    # -- state, for reports and tests -----------------------------------------------------------
    @property
    def busy(self) -> int:
        """Threads running a job now."""
        return len(self._running)

    @property
    def stuck(self) -> int:
        """Threads still running a step whose run was cancelled (or whose timeout hit)."""
        with self._lock:
            return sum(1 for job in self._running if job.cancelled)

    # -- use --------------------------------------------------------------------------------
    def submit(self, run_id: str, step: str, fn: Callable[..., Any], *args: Any
               ) -> tuple[Job, bool]:
        """Queue ``fn(*args)``; returns the job and whether it must wait for a thread (every
        thread is busy)."""
        job = Job(run_id, step, fn, args)
        with self._lock:
            if self._closed:
                raise RuntimeError("this runtime was closed (Runtime.aclose()); runs cannot use it")
            waits = False
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self.size:
                self._count += 1
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"{self._name}-{self._count}")
                self._threads.add(thread)
                thread.start()
            else:
                waits = True
                self._queued += 1
            # Put under the lock: an idle thread that times out checks the queue under it.
            self._jobs.put(job)
        return job, waits

    def cancelled(self, job: Job, loop: asyncio.AbstractEventLoop, grace: float) -> None:
        """The step of ``job`` was cancelled: drop it if it has not started; if it is running,
        count its thread as stuck and log once if it is still running after ``grace``."""
        if job.future.cancel():
            return
        job.cancelled = True
        if not job.future.done():
            loop.call_later(grace, self._report_stuck, job, grace)

    def _report_stuck(self, job: Job, grace: float) -> None:
        if job.future.done() or job.reported:
            return
        job.reported = True
        logger.warning(
            "run %s: step '%s' still runs in a task thread %s s after it was cancelled "
            "(limits.cancel_grace_period); a sync function cannot be interrupted, so the thread "
            "stays busy until it returns (check ctx.cancelled in long sync tasks); %d of %d "
            "task threads (limits.task_threads) are held by cancelled or timed-out steps",
            job.run_id, job.step, grace, self.stuck, self.size)

    def close(self) -> None:
        """Let idle threads end; running ones end when their job returns. No new jobs."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)

    # -- the threads ------------------------------------------------------------------------
    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    if not self._jobs.empty():
                        continue  # a job came in as we timed out: it counted on this thread
                    self._idle -= 1
                    self._threads.discard(me)
                    return
            if job is None:
                with self._lock:
                    self._threads.discard(me)
                return
            with self._lock:
                # Counted as running before it can be cancelled, so `stuck` never misses it.
                self._running.add(job)
            if not job.future.set_running_or_notify_cancel():
                with self._lock:
                    self._running.discard(job)  # cancelled before it started: never runs
            else:
                try:
                    result = job.fn(*job.args)
                except BaseException as exc:
                    job.future.set_exception(exc)
                else:
                    job.future.set_result(result)
                finally:
                    with self._lock:
                        self._running.discard(job)
            del job
            with self._lock:
                if self._queued:
                    self._queued -= 1
                else:
                    self._idle += 1
