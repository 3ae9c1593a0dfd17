"""Recording a run in the run log store, at its start and at its end, in a way that a failing,
slow or locked store cannot cost the run its events, nor another run its record.

- The start is recorded before the first step (:func:`record_start`); a store that fails or is
  slow does not hold the run back: the run goes on and its record is written at its end.
- The end (:func:`record_end`) is saved by the runtime's ``Recorder`` (``_recorder``), which
  keeps trying in the background until the store takes the record: a store locked for a while
  (another process holds the sqlite lock) delays a record, it does not lose it, and a run never
  stays ``running`` in the store after it ended in its process.
- What goes to the run's stream and run log about a store problem is generic (the store's own
  messages name server paths); the details go to the ``runstream`` logger, with the run id and
  never the run's parameters.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import TYPE_CHECKING

from ._errors import RunIdError
from ._recorder import client_problem

if TYPE_CHECKING:
    from ._run import Run

logger = logging.getLogger("runstream")


async def record_start(run: Run) -> bool:
    """Record the run in the store before it starts. A duplicate run id stops the run; a store
    that fails or is slower than ``limits.store_timeout`` does not: the run goes on, says so in
    its warnings and on its stream, and :func:`record_end` writes the record at the end."""
    runtime = run.runtime
    await runtime.ensure_recovered()
    await runtime.leases.keep()
    try:
        create = (asyncio.ensure_future(_claim(run)) if run.claim_queued
                  else runtime.store.create_soon(run.log))
    except Exception as error:  # raised before its future: the same as a create that failed
        create = asyncio.get_running_loop().create_future()
        create.set_exception(error)
    try:
        done = await _settled_within(create, runtime.config.limits.store_timeout)
    except asyncio.CancelledError:
        # Cancelled while the start is being recorded: let the record land (it may already be
        # written in the store's thread), so that the end can be recorded over it.
        await asyncio.wait({create}, timeout=runtime.config.limits.store_timeout)
        if create.done() and not create.cancelled():
            exc = create.exception()
            if isinstance(exc, RunIdError):
                raise exc from None  # not our run to record
            run.recorded = exc is None
        else:
            run.pending_create = create
        raise
    if not done:
        run.pending_create = create
        problem = (f"the run log store did not record the run's start within "
                   f"{runtime.config.limits.store_timeout} s")
        detail = problem
    else:
        exc = create.exception()
        if exc is None:
            return True
        if isinstance(exc, RunIdError) or not isinstance(exc, Exception):
            raise exc
        problem = f"the run log store failed to record the run's start ({client_problem(exc)})"
        detail = f"the run log store failed to record the run's start: {type(exc).__name__}: {exc}"
    message = f"{problem}; the run goes on and its log is written again when it ends"
    run.log.warnings.append(message)
    logger.error("run %s: %s", run.run_id, detail)
    return False


async def _settled_within(future: asyncio.Future[None], seconds: float) -> bool:
    """Whether ``future`` is done within ``seconds``; it is never cancelled from here,
    nor when the wait is. What ``asyncio.wait({future}, timeout=seconds)`` does, with fewer
    objects alive while a run waits for its start's record (no second coroutine, closure,
    cells nor set, and one Context for both callbacks, not one each): every run waits here,
    and under load the wait lasts long enough for the garbage collector to promote them."""
    if future.done():
        return True
    loop = asyncio.get_running_loop()
    wake = _Wake(loop.create_future())
    context = contextvars.copy_context()
    timer = loop.call_later(seconds, wake, context=context)
    future.add_done_callback(wake, context=context)
    try:
        await wake.waiter
    finally:
        timer.cancel()
        future.remove_done_callback(wake)
    return future.done()


class _Wake:
    """Completes ``waiter`` when called (as a timer's callback, or a future's)."""

    __slots__ = ("waiter",)

    def __init__(self, waiter: asyncio.Future[None]) -> None:
        self.waiter = waiter

    def __call__(self, _done: object = None) -> None:
        if not self.waiter.done():
            self.waiter.set_result(None)


async def _claim(run: Run) -> None:
    """A worker takes a submitted run: its ``queued`` record becomes this run's, once."""
    if not await run.runtime.store.save_if(run.log, status="queued"):
        raise RunIdError(f"run '{run.run_id}' is not queued any more (another worker took it, "
                         "or it was cancelled or ended)")


async def record_end(run: Run) -> None:
    """Save the run's final record: wait for the store's first attempt (at most
    ``limits.store_save_timeout``); whatever is not saved by then is retried in the background
    by the runtime's :class:`Recorder`. Never raises but for cancellation, which leaves the
    saving to the background too."""
    limits = run.runtime.config.limits
    if run.pending_create is None and run.recorded:
        # The common case, inline (no task, no future): the start is in the store, save over it.
        try:
            async with asyncio.timeout(limits.store_save_timeout):
                await run.runtime.store.save(run.log)
            return
        except asyncio.CancelledError:
            save_end(run)  # stopped while saving: the Recorder saves it in the background
            raise
        except Exception as exc:
            logger.warning("run %s: saving its final record failed (%s: %s); retrying",
                           run.run_id, type(exc).__name__, exc)
    first = save_end(run)
    done, _ = await asyncio.wait({first}, timeout=limits.store_save_timeout)
    if done and first.result() is None:
        return
    if not done:
        message = (f"the run log store did not save this run within "
                   f"{limits.store_save_timeout} s; it is saved in the background")
    else:
        message = f"the run log store failed to save this run ({first.result()})"
    run.log.warnings.append(message)
    logger.error("run %s: %s", run.run_id, message)


def save_end(run: Run) -> asyncio.Future[str | None]:
    """Hand ``run``'s final record to the runtime's :class:`Recorder` (see its ``save``)."""
    pending, run.pending_create = run.pending_create, None
    return run.runtime.recorder.save(run.log, recorded=run.recorded, pending=pending)
