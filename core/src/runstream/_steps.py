"""The step lifecycle, one for task steps and composite nodes alike.

Every step, a task or a node, gets the same treatment (:func:`run_step`): a run-log entry under
its path, an attempt per try, ``step.started``, the node hooks, ``step.completed`` with its
returns set in the frame's scope, or ``step.failed``. Task steps may be retried (``retry``); a
node's failure is reported at the step where it happened, and the node fails with it. A failed
step's ``on_failure`` handler (of a pipeline or a branch) runs through :func:`run_handler`.

The engine knows composite nodes only through :class:`NodeStep` (the composition layer above it
implements it): it never imports them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NoReturn, Protocol, TypeAlias

from ._errors import ReturnsError, StepTimeoutError
from ._hotpath import set_fields
from ._run import Frame, StepFailed
from ._runlog import StepAttempt, StepLog, StepStatus, now
from ._task import Task, TaskContext, _current_task


class NodeStep(Protocol):
    """A composite step as the engine sees it: a name, a kind (``parallel``, ``map``, ...) and a
    body that runs its branches in ``frame`` and returns the parameters to set there."""

    name: str

    @property
    def kind(self) -> str: ...

    async def run_body(self, frame: Frame, path: str) -> dict[str, Any]: ...


#: A step of a pipeline or a branch: a task, or a composite node.
Step: TypeAlias = "Task | NodeStep"


async def run_steps(frame: Frame, steps: Sequence[Step], prefix: str) -> None:
    """Run steps one after another in ``frame``; each step's path is ``prefix + step.name``."""
    run = frame.run
    for step in steps:
        if run.ended:  # ended from outside (see stop_run): the next step must not start
            raise asyncio.CancelledError
        await run_step(frame, step, prefix + step.name)


async def run_handler(frame: Frame, handler: Task, path: str) -> None:
    """Run the ``on_failure`` handler of a failed pipeline or branch; a handler that fails too
    is a warning (the original failure stands)."""
    try:
        await run_step(frame, handler, path)
    except StepFailed as failed:
        frame.run.log.warnings.append(
            f"on_failure step '{path}' failed too: {failed.error_type}: {failed.message}")


def end_attempt(frame: Frame, attempt: StepAttempt, step_log: StepLog, status: StepStatus,
                message: str | None) -> None:
    """Close a step's attempt in the run log."""
    attempt.status = step_log.status = status
    attempt.end = now()
    attempt.message = None if message is None else frame.run.redact(message)


async def run_step(frame: Frame, step: Step, path: str) -> None:
    """Run one step (a task or a node) at ``path``: events, hooks, run log, retries. Raises
    StepFailed or CancelledError."""
    run = frame.run
    retry = step.retry if isinstance(step, Task) else None
    # Every field given explicitly: pydantic's default factories cost more than the values (a
    # Map runs this once per item).
    step_log = StepLog(name=path, attempts=[])
    run.log.steps[path] = step_log
    n = 1
    started = time.perf_counter()
    while True:
        attempt = StepAttempt(n=n, start=now(), input_parameters=frame.recorded_inputs(),
                              output_parameters={})
        step_log.attempts.append(attempt)
        # `publish` + await only when needed, and hooks only when some plugin implements them:
        # a Map runs this once per item, where a coroutine per call is measurable.
        waiter = run.publish("step.started", path, {"attempt": n} if isinstance(step, Task)
                             else {"attempt": n, "node": step.kind})
        if waiter is not None:
            await waiter
        try:
            if isinstance(step, Task):
                # The task's attempt written out here (not a coroutine of its own, nor one for
                # the executor's call when there is no timeout): this frame stays suspended
                # for the whole step, and each frame less is fewer objects for the cyclic
                # garbage collector per run in flight (issue 16). The watchdog finds the step
                # by the TaskContext held as ``ctx`` (_watchdog._find_step).
                ctx = TaskContext(frame, path)
                token = _current_task.set(ctx)
                try:
                    if run.runtime.has_hook("before_node_run"):
                        await run.call_hook("before_node_run", run_log=run.log, step=path,
                                            parameters=ctx.parameters)
                    output = await (run.runtime.executor.run_task(step, ctx)
                                    if step.timeout is None else _run_timed(frame, step, ctx))
                finally:
                    _current_task.reset(token)
                outputs = pick_returns(step, path, output)
            else:
                outputs = await _attempt_node(frame, step, path)
            outputs = run.secrets.absorb(outputs)
            # One dict update instead of three pydantic __setattr__ calls (see _hotpath).
            set_fields(attempt, output_parameters=run.secrets.mask(outputs),
                       status="completed", end=now())
            step_log.status = "completed"
            if run.runtime.has_hook("after_node_run"):
                await run.call_hook("after_node_run", run_log=run.log, step=path,
                                    step_log=step_log)
            break
        except asyncio.CancelledError:
            end_attempt(frame, attempt, step_log, "cancelled", "cancelled")
            raise
        except Exception as exc:
            # A ReturnsError is never retried: a task that does not produce what its step
            # declares will not on the next attempt either (a definition error).
            if (retry is None or isinstance(exc, (StepFailed, ReturnsError))
                    or not retry.should_retry(exc, n)):
                await _fail(frame, step_log, attempt, path, exc)
            end_attempt(frame, attempt, step_log, "failed", f"{type(exc).__name__}: {exc}")
            delay = retry.pause(n, exc)
            # The attempt failed and will be run again: say so, so that a client can drop the
            # partial output it showed for this step, then wait before the next attempt.
            step_log.status = "running"
            await run.emit("step.retrying", path, {
                "attempt": n, "next_attempt": n + 1, "delay": round(delay, 3),
                "error_type": type(exc).__name__,
                "message": run.redact(str(exc) or repr(exc))})
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                step_log.status = "cancelled"
                raise
            n += 1
    frame.set(outputs)
    waiter = run.publish("step.completed", path, {
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "returns": list(outputs),
    })
    if waiter is not None:
        await waiter


async def _fail(frame: Frame, step_log: StepLog, attempt: StepAttempt, path: str,
                exc: Exception) -> NoReturn:
    """End the step as failed: its attempt, the ``on_node_error`` hooks, ``step.failed``; then
    raise StepFailed (the one from a failed step inside a node, as it was)."""
    run = frame.run
    failed = exc if isinstance(exc, StepFailed) else StepFailed(path, exc, run.redact)
    # A failure inside a node's branch is reported (run.failed, the run log's error) at the
    # step where it happened; the node fails with it.
    if failed.step != path:
        message = f"step '{failed.step}' failed: {failed.error_type}: {failed.message}"
    else:
        message = f"{failed.error_type}: {exc}"
    end_attempt(frame, attempt, step_log, "failed", message)
    await run.call_hook_reporting("on_node_error", run_log=run.log, step=path,
                                  error=failed.error)
    await run.emit("step.failed", path, failed.event_data())
    try:
        if failed is exc:
            raise failed
        raise failed from exc
    finally:
        # The traceback holds this frame: without this, exception -> traceback -> frame ->
        # exception is a cycle, and the run's frames wait for the cyclic GC.
        del failed, exc


async def _attempt_node(frame: Frame, node: NodeStep, path: str) -> dict[str, Any]:
    run = frame.run
    if run.runtime.has_hook("before_node_run"):
        await run.call_hook("before_node_run", run_log=run.log, step=path,
                            parameters=MappingProxyType(frame.parameters))
    return await node.run_body(frame, path)


async def _run_timed(frame: Frame, task: Task, ctx: TaskContext) -> Mapping[str, Any] | None:
    """Run the task through the executor within its ``timeout``."""
    executor = frame.run.runtime.executor
    deadline = asyncio.timeout(task.timeout)
    try:
        async with deadline:
            return await executor.run_task(task, ctx)
    except TimeoutError:
        if not deadline.expired():
            raise  # the task's own TimeoutError, not our deadline
        raise StepTimeoutError(
            f"step '{ctx.step}' did not finish within its timeout of {task.timeout} s") from None


def pick_returns(task: Task, step: str, output: Mapping[str, Any] | None) -> dict[str, Any]:
    """The declared returns of ``task`` from its output; ReturnsError if one is missing."""
    if not task.returns:
        return {}
    if output is None or not isinstance(output, Mapping):
        raise ReturnsError(
            f"step '{step}' declares returns {task.returns} but its task produced "
            f"{'nothing' if output is None else type(output).__name__}; make the task return "
            "(or, for an async generator, end with a {'type': 'done', ...} dict holding) them"
        )
    missing = [name for name in task.returns if name not in output]
    if missing:
        have = ", ".join(sorted(map(str, output))) or "nothing"
        raise ReturnsError(
            f"step '{step}' declares returns {task.returns} but its output has no "
            f"{', '.join(repr(m) for m in missing)} (it has: {have})"
        )
    return {name: output[name] for name in task.returns}
