"""A worker process of the ``taskiq`` executor (``runstream worker``).

- A taskiq ``Receiver`` takes submissions from the queue, at most ``concurrency`` at once (no
  prefetch beyond that: a run waits in Redis, where another worker can take it, rather than in
  this process).
- Each run holds a lease in Redis while it runs here; one task renews them all, and this
  worker's heartbeat, every third of ``lease``. A worker killed with SIGKILL stops renewing: its
  runs' leases run out, and whoever checks first (the web process that follows the run, or any
  other worker's reaper, in the same renewal task) claims each lost run once and ends it
  ``failed`` with ``WorkerLost`` (:func:`runstream.end_lost_run`).
- A message is taken from the queue into this worker's ``taken`` list (``_broker``) and leaves
  it when its run ends here. The reaper of every worker goes through the lists of dead workers:
  a run taken but not started goes back on the queue (once), a started run whose pipeline opts
  into re-running (``rerun_on_worker_loss``) goes back with its next attempt number, the rest
  end ``WorkerLost`` (``REAP`` in ``_scripts``).
- On SIGTERM (the task serving is cancelled) it takes no new run, lets those in flight finish
  for ``grace_period`` seconds, then cancels the rest through the event log, so their clients
  get ``run.cancelled`` like for any cancel; messages it took but did not start go back on the
  queue.

``RUNSTREAM_TASKIQ_TEST_HOLD`` (tests only): a directory where the worker, having taken a
message, writes ``{run_id}.taken`` and then waits forever instead of starting the run (a test
kills it there).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from runstream import EventLogError, RunstreamError, Submission, end_lost_run
from taskiq.receiver import Receiver

from ._broker import QueueBroker
from ._scripts import DONE, REAP, RELEASE, RENEW, REQUEUE, START, TASK_NAME

__all__ = ["WorkerPool"]

logger = logging.getLogger("runstream.taskiq")


#: How long a re-queued run's attempt number is kept (ms): longer than any run waits queued.
_ATTEMPT_MS = 7 * 24 * 3600 * 1000


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class Queue(Protocol):
    """What a worker needs of its ``TaskiqExecutor``."""

    lease: float
    key_prefix: str
    queue_name: str

    @property
    def where(self) -> str: ...

    def redis(self) -> Redis: ...

    def taskiq_broker(self) -> QueueBroker: ...

    def key(self, name: str) -> str: ...


class WorkerPool:
    """One worker process: its receiver, its runs in flight and their leases."""

    def __init__(self, executor: Queue, runtime: Any, run: Any) -> None:
        self.executor = executor
        self.runtime = runtime
        self._run = run
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.taken_key = executor.key(f"taken:{self.worker_id}")
        #: The runs in flight here: run id -> the task running it.
        self.running: dict[str, asyncio.Task[Any]] = {}
        self._hold = os.environ.get("RUNSTREAM_TASKIQ_TEST_HOLD")

    async def handle(self, data: dict[str, Any]) -> None:
        """The ``runstream.run`` task: run one submission here, holding its lease; its
        message is acknowledged (leaves the ``taken`` list) when it ends."""
        submission = Submission.from_json(data)
        run_id = submission.run_id
        task = asyncio.current_task()
        assert task is not None
        ex = self.executor
        redis = ex.redis()
        attempt_key = ex.key(f"attempt:{run_id}")
        started = False
        try:
            if self._hold:
                await asyncio.to_thread(_write, Path(self._hold, f"{run_id}.taken"), run_id)
                await asyncio.Event().wait()  # until the test kills this process
            # The lease is held before the first record is written.
            attempt = await redis.eval(START, 3, ex.key("leases"), ex.key("workers"),
                                       attempt_key, round(ex.lease * 1000), self.worker_id,
                                       run_id)
            started = True
            self.running[run_id] = task
            if int(attempt) > 1:
                submission = dataclasses.replace(submission, attempt=int(attempt))
            await self._run(submission)
        except RunstreamError as exc:
            logger.warning("run %s: %s", run_id, exc)
        except (RedisError, OSError) as exc:
            if started:
                raise
            # Not started: back on the queue for any worker (a cancelled start, at shutdown,
            # is put back by RELEASE when the worker goes).
            logger.warning("run %s: cannot take its lease (%s): back on the queue", run_id,
                           type(exc).__name__)
            message = ex.taskiq_broker().taken.pop(run_id, b"")
            with contextlib.suppress(RedisError, OSError):
                await redis.eval(REQUEUE, 3, self.taken_key, ex.queue_name, ex.key("leases"),
                                 run_id, message)
        finally:
            self.running.pop(run_id, None)
            if started:  # the acknowledgement: the run is over here
                message = ex.taskiq_broker().taken.pop(run_id, b"")
                with contextlib.suppress(RedisError, OSError):
                    await redis.eval(DONE, 3, ex.key("leases"), self.taken_key, attempt_key,
                                     run_id, message)

    async def _renew(self) -> None:
        ex = self.executor
        await ex.redis().eval(RENEW, 2, ex.key("leases"), ex.key("workers"),
                              round(ex.lease * 1000), self.worker_id, *self.running)

    async def _keep_leases(self) -> None:
        """Renew this worker's heartbeat and its runs' leases; reap other workers' lost runs."""
        ex = self.executor
        failing = False
        while True:
            try:
                await self._renew()
                claimed, requeued = await ex.redis().eval(
                    REAP, 3, ex.key("leases"), ex.key("workers"), ex.queue_name, ex.key_prefix,
                    round(ex.lease * 1000 * 10), _ATTEMPT_MS)
            except (RedisError, OSError) as exc:
                if not failing:
                    logger.warning("cannot renew the run leases at %s (%s): runs here are taken "
                                   "for lost in %g s unless Redis comes back", ex.where,
                                   type(exc).__name__, ex.lease)
                failing = True
            else:
                failing = False
                for raw in requeued:
                    logger.warning("run %s: the worker that had it is lost; it is back on the "
                                   "queue", _text(raw))
                for raw in claimed:
                    await self._end_lost(_text(raw))
            await asyncio.sleep(ex.lease / 3)  # a timer: the lease's renewal period

    async def _end_lost(self, run_id: str) -> None:
        reason = (f"the worker that had the run stopped renewing its lease "
                  f"({self.executor.lease:g} s): it was killed or cut off")
        logger.warning("run %s: its worker is lost; ending it (WorkerLost)", run_id)
        try:
            await end_lost_run(self.runtime, run_id, reason)
        except RunstreamError as exc:
            logger.error("run %s: could not end it: %s", run_id, exc)

    async def serve(self, concurrency: int, grace_period: float) -> None:
        ex = self.executor
        broker = ex.taskiq_broker()
        async def run_task(data: dict[str, Any]) -> None:  # taskiq renames the function
            await self.handle(data)

        broker.register_task(run_task, task_name=TASK_NAME)
        broker.taken_key = self.taken_key
        broker.is_worker_process = True
        await broker.startup()
        finish = asyncio.Event()
        loop = asyncio.get_running_loop()
        leases = loop.create_task(self._keep_leases(), name="runstream-taskiq-leases")
        with ThreadPoolExecutor(max_workers=1) as threads:
            receiver = Receiver(broker, executor=threads, validate_params=False,
                                max_async_tasks=concurrency, max_prefetch=0,
                                propagate_exceptions=False, run_startup=False,
                                wait_tasks_timeout=grace_period)
            listening = loop.create_task(receiver.listen(finish), name="runstream-taskiq-listen")
            try:
                await asyncio.shield(listening)
            except asyncio.CancelledError:
                await self._stop(finish, listening, grace_period)
                raise
            finally:
                leases.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await leases
                with contextlib.suppress(RedisError, OSError):
                    # Messages taken and not started go back on the queue; this worker goes.
                    await ex.redis().eval(RELEASE, 4, ex.key("workers"), self.taken_key,
                                          ex.queue_name, ex.key("leases"), self.worker_id)

    async def _stop(self, finish: asyncio.Event, listening: asyncio.Task[None],
                    grace_period: float) -> None:
        """Take no new run; let those in flight finish for ``grace_period`` seconds, then
        cancel the rest through the event log (their clients hear ``run.cancelled``)."""
        finish.set()
        runs = set(self.running.values())
        if runs:
            logger.info("stopping: %d run(s) in flight, %g s to finish", len(runs), grace_period)
            await asyncio.wait(runs, timeout=grace_period)
        late = dict(self.running)
        for run_id in late:
            try:
                await self.runtime.event_log.cancel(run_id, "the worker is shutting down")
            except EventLogError as exc:
                logger.warning("run %s: cannot cancel it: %s", run_id, exc)
        if late:
            grace = self.runtime.config.limits.cancel_grace_period + 1.0
            await asyncio.wait(set(late.values()), timeout=grace)
            for task in late.values():
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(2.0):
                await listening
        if not listening.done():
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
