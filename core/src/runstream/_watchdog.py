"""Watching for tasks that block the event loop (``time.sleep`` in an async function).

One event loop runs every stream of a process: a task that blocks it freezes them all, and
nothing says why. While an event loop runs runs of a runtime, a daemon thread posts a heartbeat
to it every ``interval`` (a fraction of ``limits.loop_block_warning``); when the loop has not
answered for longer than the threshold, the thread looks at what the loop's thread is doing
(``sys._current_frames``, as faulthandler and py-spy do), finds the step that runs there, and
logs a warning; once the loop is free again, the loop itself adds a warning to that run, so its
client sees why its stream froze. Nothing is done per event: the cost is a heartbeat a few
times a second, and only while runs are in flight (the thread ends when the loop has none).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from ._task import TaskContext

if TYPE_CHECKING:
    from ._runlog import RunLog


class Run(Protocol):
    """What the watchdog needs of a run (the engine's Run, which it must not import: it sits
    below the engine)."""

    announced: bool
    log: RunLog
    #: Called on the loop thread just before the run's terminal event (see _drive._announce).
    end_reports: tuple[Callable[[], None], ...]

    @property
    def run_id(self) -> str: ...

    def publish(self, type_: str, step: str | None, data: dict[str, Any]
                ) -> Awaitable[None] | None: ...

__all__: list[str] = []  # internal: reached as Runtime.loop_watch

logger = logging.getLogger("runstream")

#: The heartbeat interval is this fraction of the threshold, and at most MAX_INTERVAL seconds.
_FRACTION = 4
MAX_INTERVAL = 0.25

class _Report:
    """The report of one block to the run that caused it: made by the watchdog thread, given
    (once) on the loop thread, when the loop answers or just before the run's end, whichever
    comes first (a run may end in the same loop turn that the block ended in)."""

    __slots__ = ("done", "run", "sent", "step", "watchdog", "where")

    def __init__(self, watchdog: _Watchdog, run: Run, step: str, where: str,
                 sent: float) -> None:
        self.watchdog = watchdog
        self.run = run
        self.step = step
        self.where = where
        self.sent = sent
        self.done = False

    def __call__(self) -> None:
        run = self.run
        if self.done or run.announced:
            return
        self.done = True
        message = (f"the event loop was blocked for {time.monotonic() - self.sent:.1f} s by "
                   f"step '{self.step}' (in {self.where}), which froze every stream of this "
                   "process; use await asyncio.sleep, or run blocking code in a thread "
                   "(asyncio.to_thread, or a sync task such as PythonTask)")
        run.log.warnings.append(message)
        waiter = run.publish("run.warning", None, {"message": message})
        if inspect.iscoroutine(waiter):  # a sink's queue is full: it takes it when it can
            self.watchdog.keep(waiter)




class LoopWatch:
    """A runtime's watch over the event loops that run its runs: one watchdog per loop, started
    by the loop's first run and ended (within one interval) once the loop has none or closes."""

    def __init__(self, threshold: float | None) -> None:
        self.threshold = threshold
        self._lock = threading.Lock()
        self._dogs: dict[asyncio.AbstractEventLoop, _Watchdog] = {}
        #: Made once: a bound method per run would be one more object per run in flight. A
        #: closure, not ``self._untrack`` kept on self (a reference cycle).
        self._untrack_run = self._untracker(self._lock, self._dogs)

    def track(self, task: asyncio.Task[Any]) -> None:
        """Watch the loop of ``task`` (a run's driver; called in that loop) while it runs."""
        if self.threshold is None:
            return
        loop = task.get_loop()
        with self._lock:
            dog = self._dogs.get(loop)
            if dog is None:
                dog = self._dogs[loop] = _Watchdog(self, loop, self.threshold)
                dog.start()
            dog.runs += 1
        # The dog's own context, not a copy of the caller's per run (add_done_callback's
        # default): untrack reads no context variable, and a Context per run in flight is one
        # more object for the garbage collector. One per loop: only that loop's thread runs it.
        task.add_done_callback(self._untrack_run, context=dog.callback_context)

    @staticmethod
    def _untracker(lock: threading.Lock, dogs: dict[asyncio.AbstractEventLoop, _Watchdog]
                   ) -> Callable[[asyncio.Task[Any]], None]:
        def untrack(task: asyncio.Task[Any]) -> None:
            with lock:
                dog = dogs.get(task.get_loop())
                if dog is not None:
                    dog.runs -= 1
        return untrack

    def _retire(self, dog: _Watchdog) -> bool:
        """Whether ``dog`` is to end now (its loop has no runs, or closed); if so, forget it."""
        with self._lock:
            if dog.runs > 0 and not dog.loop.is_closed():
                return False
            if self._dogs.get(dog.loop) is dog:
                del self._dogs[dog.loop]
            return True


class _Watchdog:
    def __init__(self, watch: LoopWatch, loop: asyncio.AbstractEventLoop,
                 threshold: float) -> None:
        self.watch = watch
        self.loop = loop
        self.threshold = threshold
        self.interval = min(threshold / _FRACTION, MAX_INTERVAL)
        self.runs = 0
        #: The context the loop's runs' done callbacks run in (see LoopWatch.track).
        self.callback_context = contextvars.Context()
        self.loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        #: When the heartbeat the loop has not answered yet was posted (None: answered).
        self._sent: float | None = None
        #: What blocks the loop now, once reported (for the loop to add to the run).
        self._report: _Report | None = None
        self._reported = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self._watch, name="runstream-loop-watchdog",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- the watchdog thread ------------------------------------------------------------------
    def _watch(self) -> None:
        interval = self.interval
        last, last_cpu = time.monotonic(), time.process_time()
        while True:
            time.sleep(interval)
            if self.watch._retire(self):
                return
            now, cpu = time.monotonic(), time.process_time()
            late = now - last - interval
            starved = late > self.threshold / 2 and cpu - last_cpu < late / 2
            last, last_cpu = now, cpu
            if late >= self.threshold and not starved:
                # The process was busy, but this thread could not run: a C call held the GIL
                # (a huge regex, sum() or json.dumps ...), which holds up the loop as well.
                logger.warning(
                    "the event loop and every Python thread were held up for %.1f s by a call "
                    "that held the GIL, too long for the watchdog to see which step made it; "
                    "while it is held, no run streams; run heavy computations in a process",
                    late + interval)
                with self._lock:
                    if self._sent is not None:
                        self._sent = now  # the step that follows is not to blame for it
                continue
            with self._lock:
                sent = self._sent
                if sent is None:
                    self._sent = now
                elif starved:
                    # Neither this thread nor the process ran (starved of CPU, or stopped):
                    # not the loop's doing, so measure its block from now. (A C call that
                    # holds the GIL also keeps this thread from running, but burns CPU.)
                    self._sent = sent = now
            if sent is None:
                # RuntimeError: the loop closed; the next turn retires this watchdog.
                with contextlib.suppress(RuntimeError):
                    self.loop.call_soon_threadsafe(self._answer)
                continue
            blocked = now - sent
            if blocked >= self.threshold and not self._reported:
                self._inspect(blocked)

    def _inspect(self, blocked: float) -> None:
        frame = sys._current_frames().get(self.loop_thread)
        run, step, where, place = _find_step(frame)
        del frame
        with self._lock:
            if self._sent is None:
                return  # the loop answered meanwhile
            self._reported = True
            if run is not None and step is not None:
                self._report = _Report(self, run, step, where, self._sent)
                # One assignment (atomic), and the loop thread is blocked anyway.
                run.end_reports = (*run.end_reports, self._report)
        if step is None or run is None:
            logger.warning(
                "the event loop has been blocked for %.1f s by code outside runstream's steps "
                "(in %s): while it is blocked, no run streams", blocked, place)
            return
        logger.warning(
            "the event loop has been blocked for %.1f s by step '%s' of run %s (in %s): while "
            "it is blocked, no run streams; use await asyncio.sleep, or run blocking code in a "
            "thread (asyncio.to_thread, or a sync task such as PythonTask)",
            blocked, step, run.run_id, place)

    # -- in the loop --------------------------------------------------------------------------
    def _answer(self) -> None:
        with self._lock:
            self._sent = None
            report, self._report = self._report, None
            self._reported = False
        if report is not None:
            report()

    def keep(self, waiter: Coroutine[Any, Any, None]) -> None:
        """Run ``waiter`` (a publish that waits for a sink) in a task this watchdog owns."""
        task = self.loop.create_task(waiter)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _find_step(frame: FrameType | None) -> tuple[Run | None, str | None, str, str]:
    """The run and step whose task runs ``frame`` (the loop thread's innermost frame), the
    innermost function's name, and its place (``name at file:line``, for the server log)."""
    where = place = "?"
    if frame is not None:
        where = frame.f_code.co_name
        place = f"{where} at {frame.f_code.co_filename}:{frame.f_lineno}"
    f = frame
    while f is not None:
        # The engine's frame that runs a task holds its TaskContext as ``ctx`` (_steps).
        if "ctx" in f.f_code.co_varnames:
            ctx = f.f_locals.get("ctx")
            if isinstance(ctx, TaskContext):
                run = getattr(ctx._run, "run", None)  # the step's Frame -> its Run
                return run, ctx.step, where, place
        f = f.f_back
    return None, None, where, place
