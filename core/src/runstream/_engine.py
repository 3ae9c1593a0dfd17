"""The run engine: one :class:`Run` per run, and the driver that walks a pipeline's steps."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._channel import Channel
from ._errors import (
    RunIdError,
    RunstreamError,
    StepTimeoutError,
    TaskError,
    public_error_message,
)
from ._events import Event, EventRecord
from ._recording import record_end, record_start
from ._runlog import ErrorInfo, RunLog, StepAttempt, StepLog, StepStatus, now
from ._secrets import RunSecrets
from ._sinks import SinkRunner
from ._size import FACTOR, Unmeasured, estimate, estimate_value, json_size
from ._task import Task, TaskContext, _current_task

if TYPE_CHECKING:
    from ._branch import Step
    from ._runtime import Runtime

logger = logging.getLogger("runstream")

#: The run this asyncio task belongs to. Each run's driver task sets it in its own context copy,
#: so concurrent runs never see each other's state.
_current_run: contextvars.ContextVar[Run] = contextvars.ContextVar("runstream_current_run")

#: The parameter scope of the branch (of a composite node) this asyncio task runs, or None at
#: the top level of a run. Branch tasks set it in their own context copy, so concurrent branches
#: never see each other's writes; ``drive`` resets it, so a run started inside a branch does not
#: inherit it.
_param_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "runstream_param_scope", default=None)


class Scope(dict[str, Any]):
    """A branch's parameters: a copy of its parent's, plus what the branch sets, which it also
    records in ``local`` (the branch's returns).

    A copy, not a ``ChainMap`` over the parent: the parent does not change while its node runs
    (its other branches write to their own scopes), and a plain dict keeps every parameter
    lookup of the branch's tasks at dict speed.
    """

    __slots__ = ("local",)

    def __init__(self, parent: Mapping[str, Any], local: dict[str, Any]) -> None:
        super().__init__(parent)
        super().update(local)
        self.local = local

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.local[key] = value

    def update(self, *args: Any, **kwargs: Any) -> None:
        values = dict(*args, **kwargs)
        super().update(values)
        self.local.update(values)


def recorded_inputs(run: Run) -> dict[str, Any]:
    """The ``input_parameters`` to record for a step starting now.

    Inside a branch, only what the branch set (a Map's item included): the rest is recorded once,
    on the enclosing node's attempt. Recording the whole view per step would store a Map's list
    once per item, which grows with the square of its length.
    """
    scope = _param_scope.get()
    inputs = dict(run._parameters if scope is None else scope.local)
    return run.secrets.mask(inputs) if run.secrets else inputs

#: Items in a run's consumer channel (see runstream.EventRecord).
Record = EventRecord


class StepFailed(Exception):
    """Internal: a step failed; carries what ``step.failed`` / ``run.failed`` report."""

    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(step)
        self.step = step
        self.error = error
        self.error_type = type(error).__name__
        self.message = redact(str(error) or repr(error))


class Run:
    """The state of one run. Lives in its driver task's context, never in module globals."""

    __slots__ = ("_parameters", "announced", "cancel_reason", "channel", "ended", "finished",
                 "id_given", "log", "max_event_bytes", "measure_from", "pending_create",
                 "recorded", "runtime", "secrets", "seq", "sink_runners", "started_at",
                 "terminal")

    def __init__(self, runtime: Runtime, log: RunLog, parameters: dict[str, Any],
                 channel: Channel[Record] | None) -> None:
        self.runtime = runtime
        self.log = log
        self._parameters = parameters
        self.channel = channel
        self.seq = 0
        self.sink_runners: list[SinkRunner] = []
        self.cancel_reason = "cancelled"
        self.started_at = time.perf_counter()
        self.recorded = False
        #: Set by stop_run when the run was ended from outside; finished once _finish started;
        #: announced once the terminal event (``terminal``) was published.
        self.ended = False
        self.finished = False
        self.announced = False
        #: Whether the caller chose the run id (else it is a fresh random one).
        self.id_given = False
        self.terminal: tuple[str, dict[str, Any]] | None = None
        self.pending_create: asyncio.Future[None] | None = None
        limits = runtime.config.limits
        self.max_event_bytes = limits.max_event_bytes
        #: Estimates at or above this are measured exactly (see ``_size``).
        self.measure_from = (1 << 62 if limits.max_event_bytes is None
                             else -(-limits.max_event_bytes // FACTOR))
        if channel is not None:
            channel.limit_bytes(limits.max_queued_bytes)
        #: The run's secret parameters: masked in its record, redacted from its messages.
        self.secrets = RunSecrets()

    @property
    def run_id(self) -> str:
        return self.log.run_id

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameters as the running step sees them: the run's own, or inside a branch of a
        composite node, that branch's scope (its parent's parameters plus its own writes).
        """
        scope = _param_scope.get()
        return self._parameters if scope is None else scope

    # -- events ------------------------------------------------------------------------------
    def publish_step_event(self, step: str, data: dict[str, Any]) -> Any:
        """Hot path for ``step.event``: returns an awaitable only when someone is behind."""
        # Its size: ``_size.estimate(data)``, written out here because the call would be a
        # fifth of its cost (tests/test_size.py checks that they agree). It is within a factor
        # of the JSON size, so only events near the limit are serialised to be measured.
        size = 2
        try:
            for key, value in data.items():
                cls = type(value)
                if cls is str:
                    size += len(key) + len(value) + 7
                elif cls is int and -0x7FFFFFFFFFFFFFFF <= value <= 0x7FFFFFFFFFFFFFFF:
                    size += len(key) + 8
                else:
                    size += len(key) + 5 + estimate_value(value, 1)
        except (Unmeasured, TypeError):
            size = self._check_size(step, data)
        else:
            if size >= self.measure_from:  # near the limit, or over it: measure exactly
                size = self._check_size(step, data)
        seq = self.seq = self.seq + 1
        if self.sink_runners:
            return self._publish_to_sinks(seq, "step.event", step, data, size)
        channel = self.channel
        if channel is None:
            return None
        return channel.push((seq, time.time(), "step.event", step, data), size)

    def _publish_to_sinks(self, seq: int, type_: str, step: str | None,
                          data: dict[str, Any], size: int) -> Any:
        # Sinks with room take the event without a coroutine; only a full queue makes the
        # producer wait (bounded by the sink's send_timeout).
        ts = time.time()
        event = Event._fast(self.log.run_id, seq, ts, type_, step, data)
        runners = self.sink_runners
        for i, runner in enumerate(runners):
            if not runner.offer(event):
                return self._publish_slow(runners[i:], event, (seq, ts, type_, step, data),
                                          size)
        channel = self.channel
        return None if channel is None else channel.push((seq, ts, type_, step, data), size)

    def _check_size(self, step: str, data: dict[str, Any]) -> int:
        """The exact JSON size of an event; TaskError if it is over ``max_event_bytes``."""
        limit = self.max_event_bytes
        try:
            size = json_size(data)
        except (TypeError, ValueError, RecursionError) as exc:
            if limit is None:
                return 0  # no limit to enforce: only the channel's accounting misses it
            raise TaskError(
                f"step '{step}' emitted an event that cannot be written as JSON, so its size "
                f"cannot be checked against limits.max_event_bytes: {type(exc).__name__}: "
                f"{exc}") from None
        if limit is not None and size > limit:
            raise TaskError(
                f"step '{step}' emitted an event of {size} bytes, over the limit of {limit} "
                "(limits.max_event_bytes); send large payloads by reference (a URL or a file "
                "path) or split them into several events")
        return size

    def publish(self, type_: str, step: str | None, data: dict[str, Any]) -> Any:
        self.seq += 1
        try:
            size = estimate(data)  # the run's own events: small, never limited
        except (Unmeasured, TypeError):
            size = 0
        if self.sink_runners:
            return self._publish_to_sinks(self.seq, type_, step, data, size)
        channel = self.channel
        if channel is not None:
            return channel.push((self.seq, time.time(), type_, step, data), size)
        return None

    async def _publish_slow(self, runners: list[SinkRunner], event: Event,
                            record: Record, size: int) -> None:
        for runner in runners:
            await runner.put(event)
        channel = self.channel
        if channel is not None:
            waiter = channel.push(record, size)
            if waiter is not None:
                await waiter

    async def emit(self, type_: str, step: str | None, data: dict[str, Any]) -> None:
        waiter = self.publish(type_, step, data)
        if waiter is not None:
            await waiter

    # -- hooks -------------------------------------------------------------------------------
    async def call_hook(self, name: str, **kwargs: Any) -> None:
        if not self.runtime.has_hook(name):
            return
        results = getattr(self.runtime.plugins.manager.hook, name)(**kwargs)
        for result in results:
            if inspect.isawaitable(result):
                await result

    async def call_hook_reporting(self, name: str, **kwargs: Any) -> None:
        """Call a hook whose errors must not change the outcome: report them instead."""
        try:
            await self.call_hook(name, **kwargs)
        except Exception as exc:
            # The run log (which clients may read) gets the error's type, the server log all.
            self.log.warnings.append(
                f"hook {name} raised {type(exc).__name__}: {public_error_message(exc)}")
            logger.warning("run %s: %s", self.run_id,
                           redact(f"hook {name} raised {type(exc).__name__}: {exc}"))


def redact(text: str) -> str:
    """``text`` without the secret values of the run this asyncio task belongs to."""
    run = _current_run.get(None)
    return run.secrets.redact(text) if run is not None and run.secrets.texts else text


def _error_info(step: str | None, error: BaseException) -> dict[str, Any]:
    return {"error_type": type(error).__name__, "message": redact(str(error) or repr(error)),
            "step": step}


def pick_returns(task: Task, step: str, output: Mapping[str, Any] | None) -> dict[str, Any]:
    if not task.returns:
        return {}
    if output is None or not isinstance(output, Mapping):
        raise RunstreamError(
            f"step '{step}' declares returns {task.returns} but its task produced "
            f"{'nothing' if output is None else type(output).__name__}"
        )
    missing = [name for name in task.returns if name not in output]
    if missing:
        have = ", ".join(sorted(map(str, output))) or "nothing"
        raise RunstreamError(
            f"step '{step}' declares returns {task.returns} but its output has no "
            f"{', '.join(repr(m) for m in missing)} (it has: {have})"
        )
    return {name: output[name] for name in task.returns}


def end_attempt(attempt: StepAttempt, step_log: StepLog, status: StepStatus,
                message: str | None) -> None:
    """Close a step's attempt in the run log (a task step's or a composite node's)."""
    attempt.status = step_log.status = status
    attempt.end = now()
    attempt.message = None if message is None else redact(message)


async def run_step(run: Run, task: Task, path: str) -> None:
    """Run one task step: events, hooks, run log, retries (``task.retry``). Raises StepFailed or
    CancelledError."""
    # Every field given explicitly: pydantic's default factories cost more than the values (a
    # Map runs this once per item).
    step_log = StepLog(name=path, attempts=[])
    run.log.steps[path] = step_log
    retry = task.retry
    n = 1
    started = time.perf_counter()
    while True:
        attempt = StepAttempt(n=n, start=now(), input_parameters=recorded_inputs(run),
                              output_parameters={})
        step_log.attempts.append(attempt)
        # `publish` + await only when needed, and hooks only when some plugin implements them:
        # a Map runs this once per item, where a coroutine per call is measurable.
        waiter = run.publish("step.started", path, {"attempt": n})
        if waiter is not None:
            await waiter
        ctx = TaskContext(run, path)
        token = _current_task.set(ctx)
        try:
            if run.runtime.has_hook("before_node_run"):
                await run.call_hook("before_node_run", run_log=run.log, step=path,
                                    parameters=ctx.parameters)
            output = await _run_task(run, task, ctx)
            outputs = run.secrets.absorb(pick_returns(task, path, output))
            # One dict update instead of three pydantic __setattr__ calls (no validation is
            # configured on assignment, so this is the same thing, ~1 us cheaper per step).
            attempt.__dict__.update(output_parameters=run.secrets.mask(outputs),
                                    status="completed", end=now())
            step_log.status = "completed"
            if run.runtime.has_hook("after_node_run"):
                await run.call_hook("after_node_run", run_log=run.log, step=path,
                                    step_log=step_log)
            break
        except asyncio.CancelledError:
            end_attempt(attempt, step_log, "cancelled", "cancelled")
            raise
        except Exception as exc:
            end_attempt(attempt, step_log, "failed", f"{type(exc).__name__}: {exc}")
            if retry is None or not retry.should_retry(exc, n):
                await run.call_hook_reporting("on_node_error", run_log=run.log, step=path,
                                              error=exc)
                await run.emit("step.failed", path, _error_info(path, exc))
                raise StepFailed(path, exc) from exc
            delay = retry.pause(n)
            retrying = {"attempt": n, "next_attempt": n + 1, "delay": round(delay, 3),
                        "error_type": type(exc).__name__,
                        "message": redact(str(exc) or repr(exc))}
        finally:
            _current_task.reset(token)
        # The attempt failed and will be run again: say so, so that a client can drop the
        # partial output it showed for this step, then wait before the next attempt.
        step_log.status = "running"
        await run.emit("step.retrying", path, retrying)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            step_log.status = "cancelled"
            raise
        n += 1
    run.parameters.update(outputs)
    waiter = run.publish("step.completed", path, {
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "returns": list(outputs),
    })
    if waiter is not None:
        await waiter


async def _run_task(run: Run, task: Task, ctx: TaskContext) -> Mapping[str, Any] | None:
    """Run the task through the executor, within its ``timeout`` if it has one."""
    if task.timeout is None:
        return await run.runtime.executor.run_task(task, ctx)
    deadline = asyncio.timeout(task.timeout)
    try:
        async with deadline:
            return await run.runtime.executor.run_task(task, ctx)
    except TimeoutError:
        if not deadline.expired():
            raise  # the task's own TimeoutError, not our deadline
        raise StepTimeoutError(
            f"step '{ctx.step}' did not finish within its timeout of {task.timeout} s") from None


async def stop_run(run: Run, task: asyncio.Task[Any], reason: str) -> None:
    """Cancel a run's task and wait for it, at most ``limits.cancel_grace_period``.

    A task that ignores cancellation cannot be killed; past the grace period the run is ended
    from here instead (its terminal event, saved, reported in its warnings) and cut off: whatever
    it emits later goes nowhere, and it stops at its next step."""
    if task.done():
        return
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
        run.runtime.recorder.save_end(run)  # in the background: the task is stuck, we are not
    await _announce(run, terminal)
    run.channel = None  # the stuck task's later events go nowhere
    run.sink_runners = []


async def run_steps(run: Run, steps: Sequence[Step], prefix: str) -> None:
    """Run steps one after another; each step's path is ``prefix + step.name``."""
    for step in steps:
        if run.ended:  # ended from outside (see stop_run): the next step must not start
            raise asyncio.CancelledError
        if isinstance(step, Task):
            await run_step(run, step, prefix + step.name)
        else:
            await step._run(run, prefix + step.name)


async def drive(run: Run, steps: Sequence[Step], on_failure: Task | None) -> RunLog:
    """Run a pipeline to its end. Returns the run log; re-raises cancellation after recording
    it. Raises only for errors that happen before the run starts (duplicate run id, store)."""
    _current_run.set(run)
    _param_scope.set(None)
    runtime = run.runtime
    try:
        runtime.claim_run_id(run.run_id)
    except BaseException:
        if run.channel is not None:
            run.channel.close()
        raise
    try:
        return await _drive(run, steps, on_failure)
    finally:
        runtime.release_run_id(run.run_id)


async def _drive(run: Run, steps: Sequence[Step], on_failure: Task | None) -> RunLog:
    runtime = run.runtime
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
    for label, proto in runtime.sinks:
        try:
            sink = proto.for_run()
        except Exception as exc:  # the run goes on without it, as with a sink that fails later
            prefix = f"sink {label} failed and was dropped for this run"
            log.warnings.append(f"{prefix}: {type(exc).__name__}: {public_error_message(exc)}")
            logger.warning("run %s: %s: %s: %s", run.run_id, prefix, type(exc).__name__, exc)
            continue
        runner = SinkRunner(sink, label, log)
        runner.start()
        run.sink_runners.append(runner)

    cancelled = False
    terminal: tuple[str, dict[str, Any]]
    try:
        if cancelled_at_start:
            raise asyncio.CancelledError
        try:
            await run.emit("run.started", None, {"pipeline": log.pipeline})
            for warning in log.warnings:  # the store could not record the start
                await run.emit("run.warning", None, {"message": warning})
            await run.call_hook("before_run", run_log=log)
            await run_steps(run, steps, "")
        except StepFailed as failed:
            log.status = "failed"
            log.error = ErrorInfo(type=failed.error_type, message=failed.message,
                                  step=failed.step)
            terminal = ("run.failed", {"error_type": failed.error_type,
                                       "message": failed.message, "step": failed.step})
            if on_failure is not None:
                try:
                    await run_step(run, on_failure, on_failure.name)
                except StepFailed as handler_failed:
                    log.warnings.append(
                        f"on_failure step '{on_failure.name}' failed too: "
                        f"{handler_failed.error_type}: {handler_failed.message}")
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
        log.error = ErrorInfo(type=type(exc).__name__, message=redact(str(exc) or repr(exc)),
                              step=None)
        terminal = ("run.failed", _error_info(None, exc))
    log.ended = now()
    terminal[1]["duration_ms"] = round((time.perf_counter() - run.started_at) * 1000, 3)
    await _finish(run, terminal)
    if cancelled:
        raise asyncio.CancelledError
    return log


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
    run.runtime.recorder.save_end(run)
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
            run.runtime.recorder.save_end(run)
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
