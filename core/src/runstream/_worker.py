"""The worker side of a remote executor: running one :class:`Submission` to its end.

A worker process (``runstream worker``) builds a runtime from the same config as the web
processes; its remote executor takes submissions from its queue and calls
:func:`run_submission` for each. The run is driven here like any local run (its task steps run
in this process), and:

- its ``queued`` record in the store becomes this worker's (``save_if``: a submission
  delivered twice runs once);
- every batch of its records is appended to the shared event log, where the process that
  submitted it (and any other) reads them; its end is recorded there;
- a cancel signal for it (heard through the event log, or already asked before it started)
  cancels it; its tasks' ``finally`` blocks run as in any cancelled run;
- if the event log refuses a batch (unreachable, or the run was ended elsewhere because this
  worker was taken for lost), the run is cancelled: nobody could read it;
- a later attempt (``submission.attempt > 1``: its pipeline opts into re-running a run whose
  worker was lost) runs from the start, after a ``run.restarted`` record; its records
  continue the run's seqs after the last one sent, so every reader's stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ._channel import Channel
from ._drive import drive
from ._errors import EventLogError, RunstreamError
from ._pipeline import CHANNEL_CAPACITY, AsyncPipeline, RunHandle
from ._refs import load_pipeline_ref
from ._remote import end_here
from ._run import Run
from ._runlog import ErrorInfo, RunLog
from ._secrets import Secret

if TYPE_CHECKING:
    from ._events import EventRecord
    from ._executor import Submission
    from ._runtime import Runtime

__all__ = ["end_lost_run", "run_submission"]

logger = logging.getLogger("runstream")

#: Per-runtime cache of the pipelines loaded by reference (``runtime.state``).
_PIPELINES = "runstream_worker_pipelines"


def _pipeline(runtime: Runtime, ref: str) -> AsyncPipeline:
    state = runtime.state
    if _PIPELINES not in state:
        setattr(state, _PIPELINES, {})
    cache: dict[str, AsyncPipeline] = getattr(state, _PIPELINES)
    pipeline = cache.get(ref)
    if pipeline is None:
        pipeline = cache[ref] = load_pipeline_ref(ref, runtime)
    return pipeline


async def run_submission(submission: Submission, runtime: Runtime) -> RunLog:
    """Run a submitted run here, to its end (see the module); returns its run log. Never
    raises for the run's own failures: they are in the run log and the event log."""
    try:
        pipeline = _pipeline(runtime, submission.pipeline_ref)
    except RunstreamError as exc:
        return await _refuse(runtime, submission, ErrorInfo.from_exception(exc))
    elog = runtime.event_log
    cancel_reason = getattr(elog, "cancel_reason", None)
    if callable(cancel_reason):
        try:
            asked = await cancel_reason(submission.run_id)
        except EventLogError:
            asked = None
        if asked is not None:  # cancelled while it waited in the queue
            return await _refuse(runtime, submission, ErrorInfo(type="Cancelled", message=asked),
                                 "cancelled")
    restart: tuple[int, str] | None = None
    if submission.attempt > 1:
        try:
            restart = await _restart(runtime, submission)
        except RunstreamError as exc:
            return await _refuse(runtime, submission, ErrorInfo(
                type="WorkerLost", message=f"the run could not be started again: {exc}"))
        if restart is None:  # it ended meanwhile
            return RunLog(run_id=submission.run_id, pipeline=submission.pipeline)
    names = set(submission.secret_names)
    params: dict[str, Any] = {k: Secret(v) if k in names else v
                              for k, v in submission.parameters.items()}
    channel: Channel[EventRecord] = Channel(CHANNEL_CAPACITY)
    run = pipeline._prepare(params, submission.run_id, runtime, None, channel, False,
                            submission.owner)
    run.claim_queued = True
    if restart is not None:
        run.seq, warning = restart
        run.log.warnings.append(warning)
    task = asyncio.get_running_loop().create_task(
        drive(run, pipeline.steps, pipeline.on_failure), name=f"runstream-run-{run.run_id}")
    runtime.loop_watch.track(task)
    handle = RunHandle(run, task, channel)
    stopping: set[asyncio.Task[Any]] = set()

    def on_cancel(run_id: str, reason: str) -> None:
        if run_id == run.run_id and not task.done():
            stop = asyncio.get_running_loop().create_task(handle.cancel(reason))
            stopping.add(stop)
            stop.add_done_callback(stopping.discard)

    unsubscribe = elog.subscribe_cancel(on_cancel)
    try:
        await _pump(handle, runtime)
    finally:
        unsubscribe()
    if stopping:
        await asyncio.wait(stopping)
    log = run.log
    try:
        await elog.end(run.run_id, log.status)
    except EventLogError as exc:
        logger.warning("run %s: could not record its end in the event log: %s", run.run_id, exc)
    return log


async def _pump(handle: RunHandle, runtime: Runtime) -> None:
    """Append the run's records to the event log as they come; cancel it if the log refuses."""
    batches = handle.batches()
    try:
        async for batch in batches:
            try:
                await runtime.event_log.append(handle.run_id, batch)
            except EventLogError as exc:
                logger.warning("run %s: the event log refused its events (%s): cancelling it",
                               handle.run_id, exc)
                await batches.aclose()  # cancels the run
                return
    except RunstreamError as exc:  # it could not start (not queued any more)
        logger.warning("run %s: not started: %s", handle.run_id, exc)
    finally:
        await batches.aclose()


async def _restart(runtime: Runtime, submission: Submission) -> tuple[int, str] | None:
    """Prepare attempt ``submission.attempt`` of a run whose previous worker was lost: its
    record in the store ``queued`` again (for this worker to claim), a ``run.restarted`` record
    after the last one sent. Returns the seq this attempt's records go after, and the warning;
    None if the run has ended meanwhile (cancelled, or ended by another process)."""
    run_id = submission.run_id
    elog = runtime.event_log
    info = await elog.get_run(run_id)
    if info is None or info.ended:
        return None
    stored = await runtime.store.get(run_id)
    if stored.status in ("running", "abandoned"):
        previous = stored.status
        stored.status = "queued"
        await runtime.store.save_if(stored, status=previous)
    warning = (f"attempt {submission.attempt} of {submission.reruns + 1}: the worker running "
               "the run was lost; it runs again from the start, after the events already sent")
    seq = info.last_seq + 1
    data = {"attempt": submission.attempt, "attempts": submission.reruns + 1,
            "message": warning}
    await elog.append(run_id, [(seq, time.time(), "run.restarted", None, data)])
    return seq, warning


async def _refuse(runtime: Runtime, submission: Submission, error: ErrorInfo,
                  status: str = "failed") -> RunLog:
    """End a submission that cannot run here (its pipeline cannot be loaded, or it was
    cancelled while queued), for its readers and in the store."""
    log = RunLog(run_id=submission.run_id, pipeline=submission.pipeline, owner=submission.owner)
    run = Run(runtime, log, {}, None)
    logger.warning("run %s: %s: %s", submission.run_id, error.type, error.message)
    try:
        await end_here(run, status, error)
    except RunstreamError as exc:
        logger.error("run %s: could not end it: %s", submission.run_id, exc)
    return log


async def end_lost_run(runtime: Runtime, run_id: str, reason: str) -> None:
    """End a submitted run whose worker is gone (a remote executor claimed it lost): a
    ``run.failed`` record (error type ``WorkerLost``) after its last one in the event log, its
    end there, and ``failed`` in the store. Nothing if the event log has it ended already."""
    try:
        log = await runtime.store.get(run_id)
    except RunstreamError:
        log = RunLog(run_id=run_id, pipeline="")
    await end_here(Run(runtime, log, {}, None), "failed",
                   ErrorInfo(type="WorkerLost", message=reason))
