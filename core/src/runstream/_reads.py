"""Which parameters a pipeline reads, when every step can tell (for ``runstream run --param``)."""

from __future__ import annotations

from collections.abc import Iterable

from ._branch import Branch, Node, Step
from ._nodes import Conditional, Map, Parallel
from ._pipeline import AsyncPipeline
from ._task import Task


def parameters_read(pipeline: AsyncPipeline) -> frozenset[str] | None:
    """Every parameter name a run of ``pipeline`` may read or set (a step's ``returns`` count:
    a parameter given with that name is read by the steps after it), or ``None`` when a step
    cannot tell (:meth:`Task.reads_parameters` returned ``None``, or a node of an unknown kind).
    """
    return _union([*pipeline.steps, *_opt(pipeline.on_failure)])


def _opt(task: Task | None) -> list[Step]:
    return [] if task is None else [task]


def _union(steps: Iterable[Step | Branch]) -> frozenset[str] | None:
    names: set[str] = set()
    for step in steps:
        found = _branch(step) if isinstance(step, Branch) else _step(step)
        if found is None:
            return None
        names |= found
    return frozenset(names)


def _branch(branch: Branch) -> frozenset[str] | None:
    return _union([*branch.steps, *_opt(branch.on_failure)])


def _step(step: Step) -> frozenset[str] | None:
    if isinstance(step, Task):
        reads = step.reads_parameters()
        return None if reads is None else frozenset(reads) | frozenset(step.returns)
    inner: frozenset[str] | None
    own: set[str]
    if isinstance(step, Parallel):
        own, inner = set(), _union(step.branches.values())
    elif isinstance(step, Map):
        own = {step.over, step.iterate_as, *step.returns}
        inner = _branch(step.branch)
    elif isinstance(step, Conditional):
        own = {step.parameter}
        inner = _union([*step.branches.values(), *([step.default] if step.default else [])])
    else:
        assert isinstance(step, Node)
        return None
    return None if inner is None else inner | own
