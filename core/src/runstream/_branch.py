"""Branches and the base of composite steps: how a node runs its branches.

A composite step (a *node*) runs *branches*: lists of steps, each with an optional ``on_failure``
step (:class:`Branch`). Every branch gets its own parameter scope layered over its parent's: it
sees every parameter set before the node, plus what its own steps return, and never what a
concurrent sibling returns. When the node completes, what its branches returned is merged into
the parent scope (each node type has its rule, see the classes).

Paths: a step in a branch has the path ``<node path>.<branch key>.<step name>`` (Map uses the
item's index as the key, Conditional ``default`` for its default branch).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias

from ._engine import (
    Run,
    Scope,
    StepFailed,
    _error_info,
    _param_scope,
    end_attempt,
    recorded_inputs,
    run_step,
    run_steps,
)
from ._errors import PipelineDefinitionError
from ._runlog import StepAttempt, StepLog, now
from ._task import Task

__all__ = ["Branch", "Node"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")

#: A step of a pipeline or a branch: a task, or a composite node.
Step: TypeAlias = "Task | Node"

class Branch:
    """A branch of a composite node: steps run one after another, and an optional
    ``on_failure`` step.

    ``on_failure`` runs, in the branch's scope, when one of the branch's steps fails; then the
    branch still fails (as a pipeline's ``on_failure`` does: it cleans up or reports, it does not
    turn a failure into a success). Anywhere a branch is expected, a plain list of steps is a
    branch without ``on_failure``.
    """

    __slots__ = ("on_failure", "steps")

    def __init__(self, steps: Sequence[Step], on_failure: Task | None = None) -> None:
        if isinstance(steps, (Task, Node, str)) or not isinstance(steps, Sequence) or not steps:
            raise PipelineDefinitionError("a branch needs a non-empty list of steps")
        if on_failure is not None and not isinstance(on_failure, Task):
            raise PipelineDefinitionError(
                f"a branch's on_failure must be a task, not a {type(on_failure).__name__}")
        self.steps: tuple[Step, ...] = tuple(steps)
        self.on_failure = on_failure

    def __repr__(self) -> str:
        handler = "" if self.on_failure is None else f", on_failure={self.on_failure.name!r}"
        return f"Branch(steps={[s.name for s in self.steps]!r}{handler})"

    def _check(self, where: str) -> None:
        seen: set[str] = set()
        handler = [self.on_failure] if self.on_failure is not None else []
        for i, step in enumerate([*self.steps, *handler]):
            if not isinstance(step, (Task, Node)):
                hint = (" (wrap functions: AsyncPythonTask(name=..., function=...))"
                        if callable(step) else "")
                label = "on_failure" if i == len(self.steps) else f"steps[{i}]"
                raise PipelineDefinitionError(
                    f"{where}: {label} is a {type(step).__name__}, not a task or node{hint}")
            if step.name in seen:
                raise PipelineDefinitionError(
                    f"{where}: two steps are named '{step.name}'; step names must be unique "
                    "within a branch")
            seen.add(step.name)


def as_branch(value: Branch | Sequence[Step], where: str) -> Branch:
    """A :class:`Branch` from a branch or a list of steps; raises PipelineDefinitionError."""
    if isinstance(value, Branch):
        branch = value
    else:
        try:
            branch = Branch(value)
        except PipelineDefinitionError as exc:
            raise PipelineDefinitionError(f"{where}: {exc}") from None
    branch._check(where)
    return branch


class Node:
    """Base class of composite steps. A node is a step: it has a ``name``, gets
    ``step.started`` / ``step.completed`` / ``step.failed`` events and a run log entry under its
    path, and fires the node hooks, like a task step."""

    #: The node type, as in YAML ``type:`` and the ``node`` key of its ``step.started`` data.
    kind: ClassVar[str] = "node"

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PipelineDefinitionError(
                f"invalid {self.kind} step name {name!r}: use 1-100 letters, digits, '_' and "
                "'-' (no dots: dots separate the parts of a step's path)")
        self.name = name

    def _where(self) -> str:
        return f"{self.kind} step '{self.name}'"

    async def _body(self, run: Run, path: str) -> dict[str, Any]:
        """Run the branches; return the parameters to set in the parent scope."""
        raise NotImplementedError

    async def _run(self, run: Run, path: str) -> None:
        step_log = StepLog(name=path)
        run.log.steps[path] = step_log
        attempt = StepAttempt(n=1, input_parameters=recorded_inputs(run))
        step_log.attempts.append(attempt)
        await run.emit("step.started", path, {"attempt": 1, "node": self.kind})
        started = time.perf_counter()
        try:
            await run.call_hook("before_node_run", run_log=run.log, step=path,
                                parameters=MappingProxyType(run.parameters))
            outputs = await self._body(run, path)
            attempt.output_parameters = run.secrets.mask(outputs)
            attempt.status = step_log.status = "completed"
            attempt.end = now()
            await run.call_hook("after_node_run", run_log=run.log, step=path, step_log=step_log)
        except asyncio.CancelledError:
            end_attempt(attempt, step_log, "cancelled", "cancelled")
            raise
        except Exception as exc:
            # A failure inside a branch is reported (run.failed, the run log's error) at the
            # step where it happened; the node fails with it.
            failed = exc if isinstance(exc, StepFailed) else StepFailed(path, exc)
            end_attempt(attempt, step_log, "failed",
                        f"{failed.error_type}: {failed.message}" if failed.step == path
                        else f"step '{failed.step}' failed: {failed.error_type}: "
                             f"{failed.message}")
            await run.call_hook_reporting("on_node_error", run_log=run.log, step=path,
                                          error=failed.error)
            await run.emit("step.failed", path, _error_info(failed.step, failed.error))
            if failed is exc:
                raise
            raise failed from exc
        run.parameters.update(outputs)
        await run.emit("step.completed", path, {
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "returns": list(outputs),
        })


async def run_branch(run: Run, branch: Branch, prefix: str, parent: Mapping[str, Any],
                     local: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a branch in its own scope (see :class:`Scope`), for this asyncio task only. ``local``
    seeds it (Map's item). Returns what the branch set, ``local`` included."""
    local = {} if local is None else local
    token = _param_scope.set(Scope(parent, local))
    try:
        try:
            await run_steps(run, branch.steps, prefix)
        except StepFailed as failed:
            handler = branch.on_failure
            if handler is not None:
                try:
                    await run_step(run, handler, prefix + handler.name)
                except StepFailed as handler_failed:
                    run.log.warnings.append(
                        f"on_failure step '{prefix}{handler.name}' failed too: "
                        f"{handler_failed.error_type}: {handler_failed.message}")
            raise failed
    finally:
        _param_scope.reset(token)
    return local


class _Failures:
    """Branch failures in the order they happened."""

    def __init__(self) -> None:
        self.items: list[tuple[int, BaseException]] = []

    def first(self) -> BaseException:
        return self.items[0][1]


async def _cancel_and_wait(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended (its ``finally`` blocks ran), even
    if the caller is cancelled meanwhile; then re-raise that cancellation."""
    for task in tasks:
        task.cancel()
    pending = {task for task in tasks if not task.done()}
    interrupted = False
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError


async def run_concurrently(run: Run, path: str, jobs: Sequence[Callable[[], Awaitable[None]]],
                           limit: int, fail_fast: bool) -> _Failures:
    """Run ``jobs`` at most ``limit`` at a time, in asyncio tasks owned by this call.

    Returns the failures. With ``fail_fast`` the first failure cancels every other job (and
    nothing new starts); without it, every job runs to its end. Cancelling the caller cancels
    every job and waits for them all before re-raising: nothing is left running.
    """
    failures = _Failures()
    if not jobs:
        return failures
    upcoming = iter(range(len(jobs)))
    stop = False

    async def worker() -> None:
        nonlocal stop
        # A fixed pool of workers pulling job numbers, not a task per job: Map over 10,000
        # items holds `limit` tasks, and jobs start in input order.
        for i in upcoming:
            if stop:
                return
            try:
                await jobs[i]()
            except Exception as exc:
                failures.items.append((i, exc))
                if fail_fast:
                    stop = True
                    raise

    workers = [asyncio.create_task(worker(), name=f"runstream-{run.run_id}-{path}-{w}")
               for w in range(min(limit, len(jobs)))]
    try:
        _, pending = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        stop = True
        await _cancel_and_wait(workers)
        raise
    if pending:
        await _cancel_and_wait(list(pending))
    for task in workers:  # retrieve every outcome: no "exception was never retrieved"
        if not task.cancelled():
            exc = task.exception()
            if exc is not None and not isinstance(exc, Exception):
                raise exc  # KeyboardInterrupt, SystemExit: not a branch failure, pass it on
    return failures


def raise_first(where: str, failures: _Failures, labels: Sequence[str]) -> None:
    if not failures.items:
        return
    first = failures.first()
    if len(failures.items) > 1 and isinstance(first, StepFailed):
        others = ", ".join(labels[i] for i, _ in failures.items[1:])
        first.message = f"{first.message} (in {where}, branches {others} failed too)"
    raise first
