"""Pipelines defined in YAML files.

```yaml
name: chat
steps:
  - name: llm
    type: async-python                  # a registered task type
    function: mypkg.llm:stream_answer   # task fields; functions only as module:function strings
    returns: [full_text]
on_failure: {name: report, type: python, function: mypkg.alerts:notify}
```

Composite steps are built in (``type: parallel``, ``map``, ``conditional``; these names are
reserved) and nest; a branch is a list of steps or ``{steps: [...], on_failure: {...}}``::

```yaml
  - name: fan
    type: parallel
    fail_fast: true                     # optional; merge: prefix (default) | flat | module:fn
    branches:
      a: [{name: llm, type: mock-llm}]
      b: {steps: [{name: llm, type: mock-llm}], on_failure: {name: note, type: python, ...}}
  - {name: each, type: map, over: questions, iterate_as: q, max_concurrency: 4,
     returns: [answer], branch: [...]}
  - {name: route, type: conditional, parameter: mode, branches: {fast: [...]}, default: [...]}
```

YAML is loaded with ``yaml.safe_load`` (no object construction). A ``module:function`` string is
resolved by importing the module, so loading a pipeline file runs that module's import-time code:
load only pipeline files you trust.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ._branch import Branch, Node, Step
from ._errors import ConfigError, PipelineDefinitionError, RunstreamError
from ._imports import import_object
from ._nodes import Conditional, Map, Parallel
from ._pipeline import AsyncPipeline
from ._runtime import Runtime, resolve_runtime
from ._task import Task
from ._validation import explain, printable, short_repr
from ._yaml_load import load_yaml

if TYPE_CHECKING:
    from ._config import Config

__all__ = ["load_pipeline", "pipeline_from_dict"]

_PIPELINE_KEYS = ("description", "name", "on_failure", "rerun_on_worker_loss", "steps")

#: Composite step types and the keys each accepts (besides ``name`` and ``type``).
_NODE_KEYS: dict[str, tuple[str, ...]] = {
    "conditional": ("branches", "default", "parameter"),
    "map": ("branch", "fail_fast", "iterate_as", "max_concurrency", "over", "returns"),
    "parallel": ("branches", "fail_fast", "merge"),
}
_BRANCH_KEYS = ("on_failure", "steps")


def _step_from(entry: Any, where: str, runtime: Runtime) -> Step:
    # `type` is checked to be a string before any lookup: `type: [parallel]` is a list, which
    # cannot be a dict key.
    if isinstance(entry, dict) and isinstance(entry.get("type"), str) and (
            entry["type"] in _NODE_KEYS):
        return _node_from(entry, where, runtime)
    return _task_from(entry, where, runtime)


def _branch_from(value: Any, where: str, runtime: Runtime) -> Branch:
    if isinstance(value, dict):
        unknown = sorted(printable(k) for k in value if k not in _BRANCH_KEYS)
        if unknown:
            raise PipelineDefinitionError(
                f"{where}: unknown key '{unknown[0]}'; a branch is a list of steps or a mapping "
                f"with keys {', '.join(_BRANCH_KEYS)}")
        steps, on_failure = value.get("steps"), value.get("on_failure")
    else:
        steps, on_failure = value, None
    if not isinstance(steps, list) or not steps:
        raise PipelineDefinitionError(
            f"{where}: a branch must be a non-empty list of steps (or {{steps: [...], "
            "on_failure: {...}}})")
    built = [_step_from(s, f"{where}[{i}]", runtime) for i, s in enumerate(steps)]
    handler = None if on_failure is None else _task_from(on_failure, f"{where}: on_failure",
                                                        runtime)
    try:
        return Branch(built, on_failure=handler)
    except PipelineDefinitionError as exc:
        raise PipelineDefinitionError(f"{where}: {exc}") from None


def _branches_from(value: Any, where: str, runtime: Runtime) -> dict[Any, Branch]:
    if not isinstance(value, dict) or not value:
        raise PipelineDefinitionError(
            f"{where}: 'branches' must be a non-empty mapping of branch key to steps")
    return {key: _branch_from(branch, f"{where}: branches.{printable(key)}", runtime)
            for key, branch in value.items()}


def _node_from(entry: dict[str, Any], where: str, runtime: Runtime) -> Node:
    fields = dict(entry)
    kind = fields.pop("type")
    name = fields.pop("name", None)
    where = f"{where} (type: {kind})"
    allowed = _NODE_KEYS[kind]
    unknown = sorted(printable(k) for k in fields if k not in allowed)
    if unknown:
        raise PipelineDefinitionError(
            f"{where}: unknown key '{unknown[0]}'; allowed keys: name, type, "
            f"{', '.join(allowed)}")
    if not isinstance(name, str):
        raise PipelineDefinitionError(f"{where}: missing required key 'name' (a string)")
    required = {"parallel": ("branches",), "map": ("over", "branch"),
                "conditional": ("parameter", "branches")}[kind]
    for key in required:
        if key not in fields:
            raise PipelineDefinitionError(f"{where}: missing required key '{key}'")
    if not isinstance(fields.get("fail_fast", True), bool):
        raise PipelineDefinitionError(
            f"{where}: 'fail_fast' must be true or false, got {short_repr(fields['fail_fast'])}")
    get = fields.get
    node: Callable[[], Node]
    if kind == "parallel":
        merge = get("merge", "prefix")
        if isinstance(merge, str) and merge not in ("prefix", "flat"):
            try:
                merge = import_object(merge)
            except RunstreamError as exc:
                raise PipelineDefinitionError(
                    f"{where}: 'merge' must be prefix, flat or a 'module:function' path: "
                    f"{exc}") from None
        branches = _branches_from(fields["branches"], where, runtime)
        node = partial(Parallel, name, branches, fail_fast=get("fail_fast", True), merge=merge)
    elif kind == "map":
        branch = _branch_from(fields["branch"], f"{where}: branch", runtime)
        node = partial(Map, name, over=fields["over"], branch=branch,
                       iterate_as=get("iterate_as", "item"),
                       max_concurrency=get("max_concurrency", 10),
                       returns=get("returns", []), fail_fast=get("fail_fast", True))
    else:
        branches = _branches_from(fields["branches"], where, runtime)
        default = get("default")
        otherwise = None if default is None else _branch_from(default, f"{where}: default",
                                                              runtime)
        node = partial(Conditional, name, parameter=fields["parameter"], branches=branches,
                       default=otherwise)
    try:
        return node()
    except PipelineDefinitionError as exc:
        raise PipelineDefinitionError(f"{where}: {exc}") from None


def _task_from(entry: Any, where: str, runtime: Runtime) -> Task:
    if not isinstance(entry, dict):
        raise PipelineDefinitionError(
            f"{where}: a step must be a mapping with name, type and the task's fields; "
            f"got a {type(entry).__name__}")
    fields = dict(entry)
    type_name = fields.pop("type", None)
    if type_name is not None and not isinstance(type_name, str):
        raise PipelineDefinitionError(
            f"{where}: 'type' must be the name of a task type (a string), got a "
            f"{type(type_name).__name__}: {short_repr(type_name)}")
    if not isinstance(type_name, str):
        installed = ", ".join(runtime.plugins.task_types.names()) or "none"
        raise PipelineDefinitionError(
            f"{where}: missing required key 'type'; installed task types: {installed} "
            f"(composite steps: {', '.join(_NODE_KEYS)})")
    try:
        cls = runtime.plugins.task_types.get(type_name)
    except ConfigError as exc:
        raise PipelineDefinitionError(f"{where}: {exc}") from None
    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        raise PipelineDefinitionError(
            f"{where} (type: {type_name}): {explain(exc, model=cls)}") from None


def pipeline_from_dict(data: Any, runtime: Runtime, source: str = "<pipeline>"
                       ) -> AsyncPipeline:
    """Build a pipeline from a parsed YAML document, using ``runtime``'s task types."""
    if not isinstance(data, dict):
        raise PipelineDefinitionError(
            f"{source}: a pipeline file must be a mapping with keys name and steps; "
            f"got a {type(data).__name__}")
    unknown = sorted(printable(k) for k in data if k not in _PIPELINE_KEYS)
    if unknown:
        raise PipelineDefinitionError(
            f"{source}: unknown key '{unknown[0]}'; allowed keys: {', '.join(_PIPELINE_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise PipelineDefinitionError(f"{source}: missing required key 'name' (a string)")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise PipelineDefinitionError(f"{source}: 'steps' must be a non-empty list of steps")
    tasks = [_step_from(s, f"{source}: steps[{i}]", runtime) for i, s in enumerate(steps)]
    on_failure = data.get("on_failure")
    handler = None if on_failure is None else _task_from(on_failure, f"{source}: on_failure",
                                                        runtime)
    description = data.get("description") or ""
    reruns = data.get("rerun_on_worker_loss", 0)
    try:
        return AsyncPipeline(name, tasks, on_failure=handler, description=str(description),
                             rerun_on_worker_loss=reruns)
    except PipelineDefinitionError as exc:
        raise PipelineDefinitionError(f"{source}: {exc}") from None


def load_pipeline(path: str | os.PathLike[str],
                  config: Runtime | Config | str | os.PathLike[str] | None = None
                  ) -> AsyncPipeline:
    """Load a YAML pipeline file. Task types are looked up in the runtime for ``config``.

    The pipeline's ``ref`` is the file's absolute path: a remote executor's workers load it
    from there (the same path must hold the same file on every worker)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineDefinitionError(
            f"cannot read pipeline file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PipelineDefinitionError(f"pipeline file {path} is not UTF-8 text") from None
    data = load_yaml(text, str(path), PipelineDefinitionError)
    pipeline = pipeline_from_dict(data, resolve_runtime(config), str(path))
    pipeline.ref = str(Path(path).resolve())
    return pipeline
