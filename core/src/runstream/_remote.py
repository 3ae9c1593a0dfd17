"""Driving a run on a remote executor: submit it, then follow its records in the event log.

With an executor that declares ``remote = True`` (runstream-taskiq), the process that calls
``stream()`` / ``execute()`` does not run the pipeline. :func:`drive_remote` takes the place of
``_drive.drive``:

1. it records the run ``queued`` in the run log store (exclusive: a taken id is a
   :class:`RunIdError`) and creates it in the shared event log (runstream-sse has created it
   already when it streams the run: that one is taken over), both at once for a fresh id;
2. it hands a :class:`Submission` (the pipeline by reference, the parameters, the owner) to
   :meth:`Executor.submit`; a worker takes it and runs it with :func:`runstream.run_submission`,
   appending every record to the same event log;
3. it reads the run's records from the event log into the run's channel, so ``RunHandle``,
   ``execute_streaming()`` and runstream-sse see a run like any other, with the seqs the worker
   gave them, and into this process's sinks (``stdout``, ``file``: the sinks of a remote run
   read it through the event log; a sink that writes the log itself, ``sse``, finds the run
   there already and leaves it alone);
4. cancelling it (``handle.cancel()``, a client gone, closing the generator) sends a cancel
   signal through the event log, which the worker hears, and waits, at most
   ``limits.cancel_grace_period``, for the worker's ``run.cancelled``;
5. every ``executor.lost_check_interval`` seconds it asks :meth:`Executor.lost`: a worker that
   stopped renewing its lease (killed) makes the run end here, ``failed`` with ``WorkerLost``,
   in the event log (for every reader) and in the store.
6. at the end, the run log is the worker's, read from the store (what ``execute()`` returns,
   ``RunHandle.run_log``), except for a run a transport created in the event log before it
   started it (runstream-sse): it streams the run and reads only how it ended, which the
   terminal record says; the store is not read for it.

Whoever ends a run here (a submit that failed, a lost worker) appends its terminal record after
the last one in the log, so readers in every process see the same end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from ._drive import start_sinks, with_claimed_id
from ._errors import EventLogError, RunIdError, RunstreamError
from ._events import TERMINAL_EVENT_TYPES, Event
from ._executor import Submission
from ._runlog import ErrorInfo, RunLog, now

if TYPE_CHECKING:
    from ._events import EventRecord
    from ._run import Run

__all__: list[str] = []

logger = logging.getLogger("runstream")

_STATUS = {"run.completed": "completed", "run.failed": "failed", "run.cancelled": "cancelled"}


async def drive_remote(run: Run, pipeline_ref: str, reruns: int = 0) -> RunLog:
    """Submit ``run`` to the runtime's remote executor and follow it to its end (see the
    module). Raises only for errors before the run is queued (a taken id)."""
    return await with_claimed_id(run, lambda: _drive_remote(run, pipeline_ref, reruns))


async def _drive_remote(run: Run, pipeline_ref: str, reruns: int) -> RunLog:
    runtime = run.runtime
    log = run.log
    elog = runtime.event_log
    log.status = "queued"
    taken_over = False
    try:
        if run.id_given:
            # A given id may be taken in the store: the event log is not touched then.
            await runtime.store.create(log)
            taken_over = await _open_in_log(run)
        else:
            # A fresh id: its two records are written at once (the worker needs both, and
            # hears of the run only after them): one round trip less before the first event.
            stored, opened = await asyncio.gather(
                runtime.store.create(log), _open_in_log(run), return_exceptions=True)
            if isinstance(stored, BaseException):
                if opened is None:  # the store failed: the run is not in the log either
                    with contextlib.suppress(RunstreamError):
                        await elog.end(run.run_id, "failed")
                raise stored
            if isinstance(opened, BaseException):
                raise opened
            taken_over = opened is True
    except BaseException:
        if run.channel is not None:
            run.channel.close()
        raise
    # This process's sinks (stdout, file, ...) follow the run through the event log, as every
    # other reader does; the worker's own sinks see it where it runs.
    start_sinks(run)
    submission = Submission(
        pipeline_ref=pipeline_ref, pipeline=log.pipeline, run_id=run.run_id,
        parameters=dict(run.parameters), owner=log.owner,
        secret_names=tuple(sorted(run.secrets.names)), reruns=reruns)
    cursor = [0]
    # The reading is a task of its own that is never cancelled from outside while the run goes
    # on: an event log's read need not stop cleanly at any await (a client library may retry
    # a cancelled blocking read rather than stop it, as redis-py's can), so a cancellation is
    # handled here, around it (see _cancel), and the read ends at the run's end.
    reader = asyncio.get_running_loop().create_task(
        _follow(run, cursor), name=f"runstream-follow-{run.run_id}")
    try:
        try:
            await runtime.executor.submit(submission)
        except Exception as exc:
            await end_here(run, "failed", ErrorInfo.from_exception(exc, None, run.redact))
        terminal = await asyncio.shield(reader)
    except asyncio.CancelledError:
        terminal = await _cancel(run, reader)
        await _finish(run, terminal)
        raise
    except RunstreamError as exc:
        # The event log failed mid-way: the run goes on on its worker, but not for us.
        logger.warning("run %s: cannot follow it in the event log: %s", run.run_id, exc)
        await _finish(run, None, ErrorInfo.from_exception(exc))
        return run.log
    # A run a transport created in the event log (runstream-sse) is streamed by it and only
    # its status is read here: the worker's run log is not read back from the store for it.
    await _finish(run, terminal, load=not taken_over or terminal is None)
    return run.log


async def _open_in_log(run: Run) -> bool:
    """Create the run in the event log; runstream-sse creates it before it starts the run:
    that one is taken over (returns True): at once if it says so (``logged_run_id``)."""
    if run.id_logged:
        return True
    log = run.log
    elog = run.runtime.event_log
    try:
        await elog.create(run.run_id, pipeline=log.pipeline, owner=log.owner)
    except RunIdError:
        info = await elog.get_run(run.run_id)
        if info is None or info.ended or info.last_seq or info.owner != log.owner:
            raise
        return True
    return False


async def _follow(run: Run, cursor: list[int]) -> EventRecord | None:
    """Read the run's records after ``cursor[0]`` into its channel until its terminal record
    (returned; None if the log ended the run without one)."""
    runtime = run.runtime
    watcher = asyncio.get_running_loop().create_task(
        _watch_lost(run), name=f"runstream-lost-{run.run_id}")
    try:
        async for batch in runtime.event_log.read(run.run_id, cursor[0]):
            channel = run.channel
            for record in batch:
                if record[0] <= cursor[0]:
                    continue
                cursor[0] = record[0]
                if channel is not None:
                    wait = channel.push(record)
                    if wait is not None:
                        await wait
                if run.sink_runners:
                    event = Event.from_record(run.run_id, record)
                    for runner in run.sink_runners:
                        await runner.put(event)
                if record[2] in TERMINAL_EVENT_TYPES:
                    return record
        return None
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _watch_lost(run: Run) -> None:
    executor = run.runtime.executor
    interval = executor.lost_check_interval
    while True:
        await asyncio.sleep(interval)  # a timer: the lease is checked on the executor's clock
        try:
            reason = await executor.lost(run.run_id)
        except RunstreamError as exc:
            logger.warning("run %s: cannot check its worker's lease: %s", run.run_id, exc)
            continue
        if reason is not None:
            await end_here(run, "failed", ErrorInfo(type="WorkerLost", message=reason))
            return


async def _cancel(run: Run, reader: asyncio.Task[EventRecord | None]
                  ) -> EventRecord | None:
    """The run was cancelled here: signal its worker, then wait (bounded) for its end."""
    runtime = run.runtime
    reason = run.cancel_reason
    try:
        await runtime.event_log.cancel(run.run_id, reason)
    except EventLogError as exc:
        logger.warning("run %s: could not send its cancel signal: %s", run.run_id, exc)
    grace = runtime.config.limits.cancel_grace_period
    await asyncio.wait({reader}, timeout=max(0.0, grace - 0.5))
    if not reader.done():
        # The worker did not end it in time: end it for its readers (its own later records
        # are refused by the log, which stops it).
        with contextlib.suppress(RunstreamError):
            await end_here(run, "cancelled", ErrorInfo(type="Cancelled", message=reason))
        await asyncio.wait({reader}, timeout=0.4)
    if not reader.done():
        reader.cancel()
        reader.add_done_callback(lambda t: t.cancelled() or t.exception())
        return None
    if reader.cancelled() or reader.exception() is not None:
        return None
    return reader.result()


async def end_here(run: Run, status: str, error: ErrorInfo) -> None:
    """End a remote run from this process (its worker cannot): its terminal record after the
    last one in the event log, its end there, and its final record in the store."""
    runtime = run.runtime
    elog = runtime.event_log
    info = await elog.get_run(run.run_id)
    if info is None or info.ended:
        return
    if status == "cancelled":
        data: dict[str, Any] = {"reason": error.message}
        type_ = "run.cancelled"
    else:
        data = error.event_data()
        type_ = "run.failed"
    data["duration_ms"] = round((time.perf_counter() - run.started_at) * 1000, 3)
    # The record first, as a local run does: a client that reads the terminal event and then
    # asks for the run log sees how it ended.
    try:
        stored = await runtime.store.get(run.run_id)
    except RunstreamError:
        stored = run.log
    stored.status = status  # type: ignore[assignment]
    stored.error = error
    stored.ended = now()
    for step_log in stored.steps.values():
        if step_log.status == "running":
            step_log.status = "failed" if status == "failed" else "cancelled"
    try:
        await runtime.store.save(stored)
    except RunstreamError as exc:
        logger.error("run %s: could not record its end (%s): %s", run.run_id, status, exc)
    await elog.append(run.run_id, [(info.last_seq + 1, time.time(), type_, None, data)])
    await elog.end(run.run_id, status)


async def _finish(run: Run, terminal: EventRecord | None, error: ErrorInfo | None = None,
                  *, load: bool = True) -> None:
    """The run has ended (its terminal record is out): its run log from the store (if
    ``load``: else its status, end and error from its terminal record), its end in the event
    log (this process's lease on it), its channel closed."""
    run.finished = run.announced = True
    status = _STATUS.get(terminal[2], "failed") if terminal is not None else "failed"
    # The worker has ended the run in the log already, or is about to: this end releases this
    # process's lease on it (and ends it if the worker could not). With the read, both at once.
    stored: RunLog | None = None
    if load:
        stored, _ = await asyncio.gather(_stored(run), _end_in_log(run, status))
    else:
        await _end_in_log(run, status)
    if stored is not None and stored.status == status:
        run.log = stored
    else:
        log = run.log
        log.status = status  # type: ignore[assignment]
        log.ended = log.ended or now()
        if terminal is not None and status == "failed":
            data = terminal[4]
            log.error = ErrorInfo(type=str(data.get("error_type", "Error")),
                                  message=str(data.get("message", "")), step=data.get("step"))
        elif terminal is None:
            log.error = error or ErrorInfo(type="WorkerLost",
                                           message="the run's events stopped before its end")
    if run.channel is not None:
        run.channel.close()
    for runner in run.sink_runners:
        await runner.finish(status)


async def _stored(run: Run) -> RunLog | None:
    """The run log the worker saved, or None if the store cannot say in time."""
    try:
        async with asyncio.timeout(run.runtime.config.limits.store_timeout):
            return await run.runtime.store.get(run.run_id)
    except (RunstreamError, TimeoutError):
        return None


async def _end_in_log(run: Run, status: str) -> None:
    with contextlib.suppress(RunstreamError):
        await run.runtime.event_log.end(run.run_id, status)
