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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, TypeAlias

from ._errors import PipelineDefinitionError
from ._names import STEP_NAME_RULE, is_step_name
from ._run import Frame, StepFailed
from ._steps import run_handler, run_steps
from ._task import Task

__all__ = ["Branch", "Node"]

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
        check_steps(self.steps, self.on_failure, where, "within a branch")


def check_steps(steps: Sequence[object], on_failure: object, where: str, scope: str) -> None:
    """The one check of a list of steps (a pipeline's or a branch's) and its ``on_failure``:
    each a task or a node (the handler a task), names unique ``scope``; PipelineDefinitionError
    naming ``where`` otherwise."""
    seen: set[str] = set()
    handler = [on_failure] if on_failure is not None else []
    for i, step in enumerate([*steps, *handler]):
        is_handler = i == len(steps)
        if not isinstance(step, Task) and (is_handler or not isinstance(step, Node)):
            hint = (" (wrap functions: AsyncPythonTask(name=..., function=...))"
                    if callable(step) else "")
            label = "on_failure" if is_handler else f"steps[{i}]"
            kinds = "task" if is_handler else "task or node"
            raise PipelineDefinitionError(
                f"{where}: {label} is a {type(step).__name__}, not a {kinds}{hint}")
        if step.name in seen:
            raise PipelineDefinitionError(
                f"{where}: two steps are named '{step.name}'; step names must be unique"
                + (f" {scope}" if scope else ""))
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
        if not is_step_name(name):
            raise PipelineDefinitionError(
                f"invalid {self.kind} step name {name!r}: use {STEP_NAME_RULE}")
        self.name = name

    def _where(self) -> str:
        return f"{self.kind} step '{self.name}'"

    async def run_body(self, frame: Frame, path: str) -> dict[str, Any]:
        """Run the branches in ``frame`` (the node's own step lifecycle, events and run log are
        the engine's, as for any step); return the parameters to set in ``frame``."""
        raise NotImplementedError


async def run_branch(frame: Frame, branch: Branch, prefix: str,
                     local: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a branch in a frame of its own over ``frame`` (see :meth:`Frame.branch`), seeded
    with ``local`` (Map's item). Returns what the branch set, ``local`` included."""
    own = frame.branch(local)
    try:
        await run_steps(own, branch.steps, prefix)
    except StepFailed:
        handler = branch.on_failure
        if handler is not None:
            await run_handler(own, handler, prefix + handler.name)
        raise
    assert own.local is not None
    return own.local


class _Failures:
    """Branch failures in the order they happened."""

    def __init__(self) -> None:
        self.items: list[tuple[int, BaseException]] = []

    def first(self) -> BaseException:
        return self.items[0][1]


async def run_concurrently(frame: Frame, path: str,
                           jobs: Sequence[Callable[[], Awaitable[None]]], limit: int,
                           fail_fast: bool) -> _Failures:
    """Run ``jobs`` at most ``limit`` at a time, in asyncio tasks of a task group this call
    owns.

    Returns the failures. With ``fail_fast`` the first failure cancels every other job (and
    nothing new starts); without it, every job runs to its end. Cancelling the caller cancels
    every job and waits for them all before re-raising: nothing is left running.
    """
    failures = _Failures()
    if not jobs:
        return failures
    upcoming = iter(range(len(jobs)))

    async def worker() -> None:
        # A fixed pool of workers pulling job numbers, not a task per job: Map over 10,000
        # items holds `limit` tasks, and jobs start in input order.
        for i in upcoming:
            try:
                await jobs[i]()
            except Exception as exc:
                # Kept without this frame in its traceback: the frame holds ``failures``,
                # which holds the error (a reference cycle, freed only by the cyclic GC).
                failures.items.append((i, exc.with_traceback(
                    exc.__traceback__.tb_next if exc.__traceback__ is not None else None)))
                if fail_fast:
                    raise _Stop from None  # the task group cancels the other workers

    run_id = frame.run_id
    try:
        async with asyncio.TaskGroup() as group:
            for w in range(min(limit, len(jobs))):
                group.create_task(worker(), name=f"runstream-{run_id}-{path}-{w}")
    except BaseExceptionGroup as group_error:
        # The group's traceback holds TaskGroup.__aexit__'s frame, which holds the group (a
        # reference cycle on Python 3.11): drop it before splitting (the parts would copy
        # it). The errors in the group keep their own tracebacks.
        group_error.__traceback__ = None
        rest = group_error.split(_Stop)[1]
        if rest is not None:  # KeyboardInterrupt, SystemExit: not a branch failure, pass it on
            raise rest.exceptions[0] from None
    return failures


class _Stop(Exception):
    """Internal: a job failed and the node fails fast."""


def raise_first(where: str, failures: _Failures, labels: Sequence[str]) -> None:
    if not failures.items:
        return
    first = failures.first()
    if len(failures.items) > 1 and isinstance(first, StepFailed):
        others = ", ".join(labels[i] for i, _ in failures.items[1:])
        first.message = f"{first.message} (in {where}, branches {others} failed too)"
    # Neither ``failures`` (the caller's frame holds it) nor this frame may hold the error
    # once it is raised: its traceback holds those frames (a reference cycle).
    failures.items.clear()
    try:
        raise first
    finally:
        del first
