"""Driving a run: from its start (claiming its id, recording it, opening its sinks) through its
steps to its end (the final record, then the terminal event), and stopping it from outside.

Whatever fails on the way, a run ends: its terminal event is published and its channel closed
(:func:`_finish`, :func:`_announce`), and every wait on it is bounded (:func:`stop_run`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._errors import RunIdError, public_error_message
from ._recording import record_end, record_start, save_end
from ._run import Run, StepFailed
from ._runlog import ErrorInfo, RunLog, now
from ._sinks import SinkRunner
from ._steps import Step, run_handler, run_step
from ._task import Task

__all__: list[str] = []

logger = logging.getLogger("runstream")


async def stop_run(run: Run, task: asyncio.Task[Any], reason: str) -> None:
    """Cancel a run's task and wait for it, at most ``limits.cancel_grace_period``.

    A task that ignores cancellation cannot be killed; past the grace period the run is ended
    from here instead (its terminal event, saved, reported in its warnings) and cut off: whatever
    it emits later goes nowhere, and it stops at its next step.

    Stopped twice at once (``handle.cancel()`` while the handle's iterator is being closed), the
    second call waits for the first: cancelling the task again would cut its own ending short
    (a remote run's cancel signal and record)."""
    if task.done():
        return
    if run.stopping is not None:
        await asyncio.shield(run.stopping)
        return
    stopping = run.stopping = asyncio.get_running_loop().create_future()
    try:
        await _stop_run(run, task, reason)
    finally:
        stopping.set_result(None)


async def _stop_run(run: Run, task: asyncio.Task[Any], reason: str) -> None:
    run.cancel_reason = reason
    task.cancel()
    grace = run.runtime.config.limits.cancel_grace_period
    done, _ = await asyncio.wait({task}, timeout=grace)
    if done and task.cancelled() and not run.finished:
        # Cancelled before its driver ran a line: the run still gets its record and its end.
        run.log.status = "cancelled"
        run.log.error = ErrorInfo(type="Cancelled", message=reason, step=None)
        run.log.ended = now()
        await _finish(run, ("run.cancelled", {"reason": reason, "duration_ms": 0.0}))
        return
    if not done and run.finished and not run.announced:
        # It stopped its steps and is recording its end, which the store holds up: stop that
        # wait (the record is saved in the background) rather than blame a task for it.
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=grace)
    if done or run.announced:
        return
    run.ended = True
    log = run.log
    terminal = run.terminal
    if terminal is None:
        culprit = "a task ignores cancellation"
        for step_log in log.steps.values():
            if step_log.status == "running":
                step_log.status = "cancelled"
        log.status = "cancelled"
        log.error = ErrorInfo(type="Cancelled", message=reason, step=None)
        log.ended = now()
        terminal = ("run.cancelled", {"reason": reason, "duration_ms": round(
            (time.perf_counter() - run.started_at) * 1000, 3)})
    else:  # it was ending already: an after_run hook or a sink holds it (not the store)
        culprit = "an after_run hook or a sink ignores cancellation"
    message = (f"the run did not stop within {grace} s of being cancelled "
               f"(limits.cancel_grace_period): {culprit}; it was left running and its later "
               "events are dropped")
    log.warnings.append(message)
    logger.warning("run %s: %s", run.run_id, message)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    if not run.finished:
        run.finished = True
        save_end(run)  # in the background: the task is stuck, we are not
    await _announce(run, terminal)
    run.channel = None  # the stuck task's later events go nowhere
    run.sink_runners = ()


async def drive(run: Run, steps: Sequence[Step], on_failure: Task | None) -> RunLog:
    """Run a pipeline to its end. Returns the run log; re-raises cancellation after recording
    it. Raises only for errors that happen before the run starts (duplicate run id, store)."""
    # One coroutine from the id's claim to the run's end (not with_claimed_id around a body, and
    # the steps' loop written out rather than run_steps): this frame stays suspended for the
    # whole run, and each frame (and closure) less is fewer objects for the cyclic garbage
    # collector to walk per run in flight (issue 16).
    await claim_run_id(run)
    try:
        log = run.log
        cancelled_at_start = False
        try:
            run.recorded = await record_start(run)
            if not run.recorded and run.id_given:
                _refuse_unclaimed(run)
        except asyncio.CancelledError:
            cancelled_at_start = True  # still recorded below, as cancelled
        except BaseException:
            if run.channel is not None:
                run.channel.close()
            raise
        start_sinks(run)

        cancelled = False
        frame = run.top_frame()
        terminal: tuple[str, dict[str, Any]]
        try:
            if cancelled_at_start:
                raise asyncio.CancelledError
            try:
                await run.emit("run.started", None, {"pipeline": log.pipeline})
                for warning in log.warnings:  # the store could not record the start
                    await run.emit("run.warning", None, {"message": warning})
                await run.call_hook("before_run", run_log=log)
                for step in steps:  # run_steps(frame, steps, "")
                    if run.ended:  # ended from outside (see stop_run): no next step
                        raise asyncio.CancelledError
                    await run_step(frame, step, step.name)
            except StepFailed as failed:
                log.status = "failed"
                log.error = failed.info()
                terminal = ("run.failed", log.error.event_data())
                if on_failure is not None:
                    await run_handler(frame, on_failure, on_failure.name)
            else:
                log.status = "completed"
                terminal = ("run.completed", {"status": "completed"})
        except asyncio.CancelledError:
            cancelled = True
            log.status = "cancelled"
            log.error = ErrorInfo(type="Cancelled", message=run.cancel_reason, step=None)
            terminal = ("run.cancelled", {"reason": run.cancel_reason})
        except Exception as exc:  # a before_run hook, or a bug: still end the run in-band
            log.status = "failed"
            log.error = ErrorInfo.from_exception(exc, None, run.redact)
            terminal = ("run.failed", log.error.event_data())
        log.ended = now()
        terminal[1]["duration_ms"] = round((time.perf_counter() - run.started_at) * 1000, 3)
        await _finish(run, terminal)
        if cancelled:
            raise asyncio.CancelledError
        return log
    finally:
        await release_run_id(run)


async def with_claimed_id(run: Run, body: Callable[[], Awaitable[RunLog]]) -> RunLog:
    """``body()`` with ``run``'s id claimed in its runtime, released after it; a runtime built
    for this run alone is closed afterwards (also when the id cannot be claimed). How a run is
    driven on a remote executor (``_remote``); :func:`drive` does the same inline."""
    await claim_run_id(run)
    try:
        return await body()
    finally:
        await release_run_id(run)


async def claim_run_id(run: Run) -> None:
    """Claim ``run``'s id in its runtime; if it cannot be, close the run's channel and a
    runtime built for this run alone, and raise. Does not suspend when the id is claimed."""
    runtime = run.runtime
    try:
        runtime.claim_run_id(run.run_id)
    except BaseException:
        if run.channel is not None:
            run.channel.close()
        if run.owns_runtime:
            await runtime.aclose()
        raise


async def release_run_id(run: Run) -> None:
    """Release ``run``'s id; close a runtime built for this run alone, after the final record
    is saved (aclose waits for that, bounded)."""
    run.runtime.release_run_id(run.run_id)
    if run.owns_runtime:
        await asyncio.shield(run.runtime.aclose())


def start_sinks(run: Run) -> None:
    """A runner per configured sink for ``run``, each feeding its own copy of the sink."""
    log = run.log
    for label, proto in run.runtime.sinks:
        try:
            sink = proto.for_run()
        except Exception as exc:  # the run goes on without it, as with a sink that fails later
            prefix = f"sink {label} failed and was dropped for this run"
            log.warnings.append(f"{prefix}: {type(exc).__name__}: {public_error_message(exc)}")
            logger.warning("run %s: %s: %s: %s", run.run_id, prefix, type(exc).__name__, exc)
            continue
        runner = SinkRunner(sink, label, log)
        runner.start()
        run.sink_runners = (*run.sink_runners, runner)


def _refuse_unclaimed(run: Run) -> None:
    """A caller-given run id that the store could not confirm as this run's: another process
    may have it, and sinks keyed on it (event files) would mix two runs. The run does not start;
    its record (failed) is written in the background if the store comes back."""
    log = run.log
    message = (f"run id '{run.run_id}' could not be claimed: the run log store did not confirm "
               "it (see the run's warnings); the run was not started. Retry, or omit run_id to "
               "get a new unique id")
    log.status = "failed"
    log.error = ErrorInfo(type="RunIdError", message=message, step=None)
    log.ended = now()
    run.finished = run.announced = True
    save_end(run)
    raise RunIdError(message)


async def _finish(run: Run, terminal: tuple[str, dict[str, Any]]) -> None:
    """End the run: ``after_run`` hooks, the final record, then the terminal event.

    The terminal event goes out and the channel closes whatever happens before (a hook or the
    store that fails, a cancellation while the record is being saved): a consumer waiting for
    the end always gets it. A record not saved in time is saved in the background."""
    if run.finished:
        return  # stop_run already ended this run from outside
    run.finished = True
    run.terminal = terminal
    log = run.log
    cancelled = False
    try:
        await run.call_hook_reporting("after_run", run_log=log)
    except asyncio.CancelledError:
        cancelled = True
    try:
        if cancelled:
            save_end(run)
        else:
            # Saved before the terminal event: a client that reads run.completed and then asks
            # for the run log sees the final record, and a failed save is reported on the stream.
            await record_end(run)
    except asyncio.CancelledError:
        # Stopped while the store had not yet saved the record: the save goes on in the
        # background (see Recorder), and the run ends for its consumers now.
        cancelled = True
        message = ("the run log store had not saved the run's final record when the run was "
                   "stopped; it is saved in the background")
        log.warnings.append(message)
        logger.warning("run %s: %s", run.run_id, message)
    except Exception as exc:  # a bug: still end the run
        logger.error("run %s: recording its end failed: %s: %s", run.run_id,
                     type(exc).__name__, exc)
    try:
        await _announce(run, terminal)
    finally:
        if cancelled:
            raise asyncio.CancelledError


async def _announce(run: Run, terminal: tuple[str, dict[str, Any]]) -> None:
    """Publish the terminal event once, close the channel and finish the sinks (each bounded by
    its ``send_timeout``)."""
    if run.announced:
        return
    for report in run.end_reports:
        report()
    run.announced = True
    log = run.log
    if log.warnings:
        terminal[1]["warnings"] = list(log.warnings)
    channel = run.channel
    if channel is not None:
        channel.release()  # the terminal event never waits for room
    try:
        await run.emit(terminal[0], None, terminal[1])
    finally:
        if channel is not None:
            channel.close()
        for runner in run.sink_runners:
            await runner.finish(log.status)
