"""Composite steps: :class:`Parallel`, :class:`Map` and :class:`Conditional`.

Each runs branches (see :mod:`runstream._branch` for scopes, paths and cancellation) and merges
what they returned into the parent scope by its own rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeAlias

from ._branch import (
    Branch,
    Node,
    Step,
    as_branch,
    raise_first,
    run_branch,
    run_concurrently,
)
from ._errors import ParameterError, PipelineDefinitionError
from ._names import is_step_name
from ._run import Frame

__all__ = ["Conditional", "Map", "Parallel"]

#: A merge rule of :class:`Parallel`: ``"prefix"``, ``"flat"``, or a reducer that gets
#: ``{branch: {name: value}}`` and returns the parameters to set.
Reducer: TypeAlias = Callable[[dict[str, dict[str, Any]]], Mapping[str, Any]]



def _required(parent: Mapping[str, Any], name: str, what: str) -> Any:
    """``parent[name]``, or a ParameterError: "<what> parameter 'x', which is not set"."""
    if name not in parent:
        known = ", ".join(sorted(parent)) or "none"
        raise ParameterError(f"{what} parameter '{name}', which is not set "
                             f"(parameters set: {known})")
    return parent[name]

class Parallel(Node):
    """Runs its branches concurrently; their events interleave in the run's stream, each with
    its step path (``<name>.<branch>.<step>``).

    ``branches`` maps branch keys (Python identifiers without ``__``) to branches (a list of
    steps or a :class:`Branch`). Each branch sees the parameters set before this step and its
    own steps' returns, never a sibling's.

    Merge rule, when every branch completed (``merge``):

    - ``"prefix"`` (default): each parameter a branch set becomes ``<branch>__<name>`` in the
      parent scope, e.g. ``a__full_text`` and ``b__full_text``.
    - ``"flat"``: parameters keep their names; a name set by two branches is a conflict.
    - a reducer, ``merge(results) -> mapping``, called with ``{branch: {name: value}}``; its
      result is set as is.

    Two branches that would set the same parameter fail the step with an error naming the
    parameter and the branches; nothing is overwritten silently.

    ``fail_fast=True`` (default): the first failing branch cancels its siblings. ``False``: the
    siblings run to their end, then the step fails with the first failure.
    """

    kind: ClassVar[str] = "parallel"

    def __init__(self, name: str, branches: Mapping[str, Branch | Sequence[Step]],
                 fail_fast: bool = True, merge: Literal["prefix", "flat"] | Reducer = "prefix"
                 ) -> None:
        super().__init__(name)
        where = self._where()
        if not isinstance(branches, Mapping) or not branches:
            raise PipelineDefinitionError(
                f"{where}: branches must be a non-empty mapping of branch key to steps")
        self.branches: dict[str, Branch] = {}
        for key, value in branches.items():
            if not isinstance(key, str) or not key.isidentifier() or "__" in key:
                raise PipelineDefinitionError(
                    f"{where}: branch key {key!r} must be a Python identifier without '__' "
                    "(it prefixes the branch's parameters: <branch>__<name>)")
            self.branches[key] = as_branch(value, f"{where}, branch '{key}'")
        if merge not in ("prefix", "flat") and not callable(merge):
            raise PipelineDefinitionError(
                f"{where}: merge must be 'prefix', 'flat' or a function, got {merge!r}")
        self.fail_fast = bool(fail_fast)
        self.merge = merge

    def __repr__(self) -> str:
        return f"Parallel(name={self.name!r}, branches={list(self.branches)!r})"

    async def run_body(self, frame: Frame, path: str) -> dict[str, Any]:
        keys = list(self.branches)
        results: dict[str, dict[str, Any]] = {}

        def job(key: str) -> Callable[[], Awaitable[None]]:
            async def run_one() -> None:
                results[key] = await run_branch(frame, self.branches[key], f"{path}.{key}.")
            return run_one

        failures = await run_concurrently(frame, path, [job(k) for k in keys], len(keys),
                                          self.fail_fast)
        raise_first(f"parallel step '{path}'", failures, keys)
        return self._merged(path, {k: results[k] for k in keys})

    def _merged(self, path: str, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        merge = self.merge
        if callable(merge):
            merged = merge(results)
            if not isinstance(merged, Mapping):
                raise ParameterError(
                    f"parallel step '{path}': the merge function returned a "
                    f"{type(merged).__name__}; it must return a mapping of parameter names to "
                    "values")
            bad = [k for k in merged if not isinstance(k, str) or not k.isidentifier()]
            if bad:
                raise ParameterError(
                    f"parallel step '{path}': the merge function returned {bad[0]!r}, which is "
                    "not a valid parameter name")
            return dict(merged)
        out: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for key, values in results.items():
            for name, value in values.items():
                target = f"{key}__{name}" if merge == "prefix" else name
                if target in owner:
                    hint = ("use merge='prefix' (a__x, b__x) or return different names"
                            if merge == "flat" else "rename a branch or a return")
                    raise ParameterError(
                        f"parallel step '{path}': parameter '{target}' is set by branches "
                        f"'{owner[target]}' and '{key}'; {hint}")
                owner[target] = key
                out[target] = value
        return out


class Map(Node):
    """Runs ``branch`` once per item of the list parameter ``over``, concurrently, at most
    ``max_concurrency`` at a time; branches start in input order.

    In branch ``i`` the parameter ``iterate_as`` is item ``i``; its steps' paths are
    ``<name>.<i>.<step>``. ``returns`` names parameters each branch must set: each becomes a
    list in the parent scope, in input order (``returns=["answer"]`` -> ``answer == [answer of
    item 0, answer of item 1, ...]``). Nothing else a branch sets leaves it.

    ``fail_fast=True`` (default): the first failing branch cancels the running ones and no new
    one starts. ``False``: every item runs, then the step fails with the first failure.
    """

    kind: ClassVar[str] = "map"

    def __init__(self, name: str, over: str, branch: Branch | Sequence[Step],
                 iterate_as: str = "item", max_concurrency: int = 10,
                 returns: Sequence[str] = (), fail_fast: bool = True) -> None:
        super().__init__(name)
        where = self._where()
        for label, value in (("over", over), ("iterate_as", iterate_as)):
            if not isinstance(value, str) or not value.isidentifier():
                raise PipelineDefinitionError(
                    f"{where}: {label} must be a parameter name (a Python identifier), "
                    f"got {value!r}")
        if (not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool)
                or max_concurrency < 1):
            raise PipelineDefinitionError(
                f"{where}: max_concurrency must be a whole number >= 1, got {max_concurrency!r}")
        if isinstance(returns, str) or not all(
                isinstance(r, str) and r.isidentifier() for r in returns):
            raise PipelineDefinitionError(
                f"{where}: returns must be a list of parameter names, got {returns!r}")
        if len(set(returns)) != len(returns):
            raise PipelineDefinitionError(f"{where}: return names must be unique")
        self.over = over
        self.iterate_as = iterate_as
        self.branch = as_branch(branch, f"{where}, branch")
        self.max_concurrency = max_concurrency
        self.returns: list[str] = list(returns)
        self.fail_fast = bool(fail_fast)

    def __repr__(self) -> str:
        return f"Map(name={self.name!r}, over={self.over!r}, iterate_as={self.iterate_as!r})"

    async def run_body(self, frame: Frame, path: str) -> dict[str, Any]:
        parent = frame.parameters
        items = _required(parent, self.over, f"map step '{path}' iterates over")
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
            raise ParameterError(
                f"map step '{path}': parameter '{self.over}' must be a list, got "
                f"{type(items).__name__}")
        results: list[dict[str, Any] | None] = [None] * len(items)
        branch = self.branch
        iterate_as = self.iterate_as

        def job(i: int) -> Callable[[], Awaitable[None]]:
            async def run_one() -> None:
                results[i] = await run_branch(frame, branch, f"{path}.{i}.",
                                               {iterate_as: items[i]})
            return run_one

        failures = await run_concurrently(frame, path, [job(i) for i in range(len(items))],
                                          self.max_concurrency, self.fail_fast)
        raise_first(f"map step '{path}'", failures, [str(i) for i in range(len(items))])
        out: dict[str, list[Any]] = {name: [] for name in self.returns}
        for i, values in enumerate(results):
            assert values is not None  # every job completed
            for name in self.returns:
                if name not in values:
                    have = ", ".join(sorted(k for k in values if k != iterate_as)) or "nothing"
                    raise ParameterError(
                        f"map step '{path}' returns '{name}', but branch {i} did not set it "
                        f"(it set: {have}); add it to the returns of a step in the branch")
                out[name].append(values[name])
        return dict(out)


class Conditional(Node):
    """Runs the branch whose key equals ``str()`` of the parameter ``parameter``'s value, else
    ``default``; with no match and no default the step fails naming the value and the keys.

    Keys are strings of letters, digits, ``_`` and ``-`` (YAML ``true:`` is the key ``True``,
    as ``str(True)`` is). Steps' paths are ``<name>.<key>.<step>`` (``<name>.default.<step>``
    for the default branch). What the branch's steps return is set in the parent scope.
    """

    kind: ClassVar[str] = "conditional"

    def __init__(self, name: str, parameter: str,
                 branches: Mapping[Any, Branch | Sequence[Step]],
                 default: Branch | Sequence[Step] | None = None) -> None:
        super().__init__(name)
        where = self._where()
        if not isinstance(parameter, str) or not parameter.isidentifier():
            raise PipelineDefinitionError(
                f"{where}: parameter must be a parameter name, got {parameter!r}")
        if not isinstance(branches, Mapping) or not branches:
            raise PipelineDefinitionError(
                f"{where}: branches must be a non-empty mapping of value to steps")
        self.parameter = parameter
        self.branches: dict[str, Branch] = {}
        for raw, value in branches.items():
            key = str(raw)
            if not is_step_name(key):
                raise PipelineDefinitionError(
                    f"{where}: branch key {key!r} must be 1-100 letters, digits, '_' and '-' "
                    "(it is part of the steps' paths)")
            if key in self.branches:
                raise PipelineDefinitionError(f"{where}: two branches for value {key!r}")
            self.branches[key] = as_branch(value, f"{where}, branch '{key}'")
        self.default = None if default is None else as_branch(default, f"{where}, default")
        if self.default is not None and "default" in self.branches:
            raise PipelineDefinitionError(
                f"{where}: a branch keyed 'default' and a default branch would share the path "
                f"'{name}.default'; rename one")

    def __repr__(self) -> str:
        return (f"Conditional(name={self.name!r}, parameter={self.parameter!r}, "
                f"branches={list(self.branches)!r})")

    async def run_body(self, frame: Frame, path: str) -> dict[str, Any]:
        parent = frame.parameters
        value = _required(parent, self.parameter, f"conditional step '{path}' needs")
        key = str(value)
        branch = self.branches.get(key)
        if branch is None:
            if self.default is None:
                raise ParameterError(
                    f"conditional step '{path}': parameter '{self.parameter}' is {value!r}; no "
                    f"branch for '{key}' and no default (branches: "
                    f"{', '.join(self.branches)})")
            branch, key = self.default, "default"
        return await run_branch(frame, branch, f"{path}.{key}.")
