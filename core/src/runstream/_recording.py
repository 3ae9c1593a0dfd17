"""Recording a run in the run log store, at its start and at its end, in a way that a failing,
slow or locked store cannot cost the run its events, nor another run its record."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ._errors import RunIdError

if TYPE_CHECKING:
    from ._engine import Run

logger = logging.getLogger("runstream")


async def record_start(run: Run) -> bool:
    """Record the run in the store before it starts. A duplicate run id stops the run; a store
    that fails or is slower than ``limits.store_timeout`` does not: the run goes on, says so in
    its warnings and on its stream, and :func:`record_end` writes the record at the end."""
    runtime = run.runtime
    await runtime.ensure_recovered()
    create = asyncio.ensure_future(runtime.store.create(run.log))
    try:
        done, _ = await asyncio.wait({create}, timeout=runtime.config.limits.store_timeout)
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
    else:
        exc = create.exception()
        if exc is None:
            return True
        if isinstance(exc, RunIdError) or not isinstance(exc, Exception):
            raise exc
        problem = f"the run log store failed to record the run's start: {type(exc).__name__}: {exc}"
    message = f"{problem}; the run goes on and its log is written again when it ends"
    run.log.warnings.append(message)
    logger.error("run %s: %s", run.run_id, message)
    return False


async def record_end(run: Run) -> None:
    log = run.log
    store = run.runtime.store
    pending, run.pending_create = run.pending_create, None
    if pending is not None:
        await asyncio.wait({pending}, timeout=run.runtime.config.limits.store_timeout)
        if pending.done() and not pending.cancelled() and pending.exception() is None:
            run.recorded = True
        elif not pending.done():
            pending.cancel()
    try:
        async with asyncio.timeout(run.runtime.config.limits.store_save_timeout):
            if run.recorded:
                await store.save(log)
            else:
                # Exclusive create, never an overwrite: if the id turned out to be taken, the
                # other run's record stays as it is.
                await store.create(log)
        return
    except TimeoutError:
        message = (f"the run log store did not save this run within "
                   f"{run.runtime.config.limits.store_save_timeout} s")
    except Exception as exc:
        message = f"the run log store failed to save this run: {type(exc).__name__}: {exc}"
    log.warnings.append(message)
    # Not silently lost: the whole record goes to the error log.
    logger.error("run %s: %s; run log: %s", run.run_id, message, log.model_dump_json(
        fallback=repr))
