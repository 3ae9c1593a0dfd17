"""The runtime's :class:`Recorder`: saves runs' final records, and keeps trying in the background
what the run log store did not take (see ``_recording`` for how runs use it)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ._errors import RunIdError, public_error_message

if TYPE_CHECKING:
    from ._config import Limits
    from ._runlog import RunLog
    from ._store import RunLogStore

logger = logging.getLogger("runstream")

#: Pauses between attempts to save a final record: doubled after each failure, up to the last.
_BACKOFF_FIRST = 0.2
_BACKOFF_MAX = 5.0


def client_problem(exc: BaseException) -> str:
    """What a client may read about a store error: its type, no message (that names paths)."""
    return f"{type(exc).__name__}: {public_error_message(exc)}"


class Recorder:
    """Saves the final records of a runtime's runs, retrying in the background until the store
    takes them (for at most ``limits.store_retry_period`` seconds per record).

    Each save is a task the recorder owns; :meth:`aclose` waits for them (bounded) when the
    runtime closes, and names the runs whose record could not be saved (run ids and statuses
    only: never the parameters, which may hold personal data)."""

    def __init__(self, store: RunLogStore, limits: Limits) -> None:
        self._store = store
        self._limits = limits
        self._saving: dict[asyncio.Task[None], str] = {}

    def __len__(self) -> int:
        """Final records still being saved (retried)."""
        return sum(1 for task in self._saving if not task.done())

    def save(self, log: RunLog, *, recorded: bool, pending: asyncio.Future[None] | None
             ) -> asyncio.Future[str | None]:
        """Start saving a run's final record now (``recorded``: whether its start is in the
        store; ``pending``: the store call recording its start, if still unanswered). The
        returned future completes after the first attempt: ``None`` if it saved the record,
        else a short, path-free description of the problem (attempts go on in the background
        unless the run id belongs to another run)."""
        loop = asyncio.get_running_loop()
        first: asyncio.Future[str | None] = loop.create_future()
        task = loop.create_task(self._save(log, recorded, pending, first),
                                name=f"runstream-save-{log.run_id}")
        self._saving[task] = log.run_id
        task.add_done_callback(self._done)
        return first

    def _done(self, task: asyncio.Task[None]) -> None:
        self._saving.pop(task, None)
        if not task.cancelled():
            task.exception()  # retrieved: _save logs its own problems

    async def _save(self, log: RunLog, recorded: bool, pending: asyncio.Future[None] | None,
                    first: asyncio.Future[str | None]) -> None:
        limits = self._limits
        store = self._store
        if pending is not None:
            await asyncio.wait({pending}, timeout=limits.store_timeout)
            if pending.done() and not pending.cancelled() and pending.exception() is None:
                recorded = True
        deadline = time.monotonic() + limits.store_retry_period
        pause = _BACKOFF_FIRST
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    async with asyncio.timeout(limits.store_save_timeout):
                        if recorded:
                            await store.save(log)
                        else:
                            # Exclusive create, never an overwrite: if the id turned out to be
                            # taken, the other run's record stays as it is.
                            await store.create(log)
                except RunIdError:
                    if await self._is_ours(log):
                        recorded = True  # our own start landed after all: save over it
                        continue
                    message = ("its run id is used by another run's record, which was kept; "
                               "this run's record was not saved")
                    logger.error("run %s: %s", log.run_id, message)
                    _resolve(first, message)
                    return
                except Exception as exc:
                    problem = client_problem(exc)
                    if not isinstance(exc, TimeoutError):
                        detail = f"{type(exc).__name__}: {exc}"
                    else:
                        detail = f"no answer within {limits.store_save_timeout} s"
                    _resolve(first, problem)
                    if time.monotonic() + pause > deadline:
                        logger.error("run %s (%s): the run log store did not take its final "
                                     "record in %d attempts over %.0f s (last: %s); the record "
                                     "is lost", log.run_id, log.status, attempt,
                                     limits.store_retry_period, detail)
                        return
                    logger.warning("run %s: saving its final record failed (attempt %d: %s); "
                                   "retrying in %.1f s", log.run_id, attempt, detail, pause)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, _BACKOFF_MAX)
                    continue
                if attempt > 1:
                    logger.warning("run %s: final record saved after %d attempts", log.run_id,
                                   attempt)
                _resolve(first, None)
                return
        except asyncio.CancelledError:
            logger.error("run %s (%s): stopped before its final record was saved (the runtime "
                         "or its event loop closed); the store may still show it running",
                         log.run_id, log.status)
            _resolve(first, "the runtime closed before the record was saved")
            raise

    async def _is_ours(self, log: RunLog) -> bool:
        """Whether the stored record with ``log``'s run id is this run's own (its start, which
        landed late), not another run's."""
        try:
            stored = await self._store.get(log.run_id)
        except Exception:  # not found, or the store fails: not provably ours
            return False
        return stored.process == log.process and stored.started == log.started

    async def aclose(self, grace: float) -> None:
        """Wait at most ``grace`` seconds for the records still being saved; cancel the rest
        (each is reported in the log)."""
        tasks = [task for task in self._saving if not task.done()]
        if not tasks:
            return
        logger.info("waiting up to %.1f s for %d run record(s) to be saved", grace, len(tasks))
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)


def _resolve(future: asyncio.Future[str | None], value: str | None) -> None:
    if not future.done():
        future.set_result(value)
