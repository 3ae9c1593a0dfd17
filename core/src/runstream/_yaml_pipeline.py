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

YAML is loaded with ``yaml.safe_load`` (no object construction). A ``module:function`` string is
resolved by importing the module, so loading a pipeline file runs that module's import-time code:
load only pipeline files you trust.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from ._errors import ConfigError, PipelineDefinitionError
from ._pipeline import AsyncPipeline
from ._runtime import Runtime, resolve_runtime
from ._task import Task
from ._validation import explain

if TYPE_CHECKING:
    from ._config import Config

__all__ = ["load_pipeline", "pipeline_from_dict"]

_PIPELINE_KEYS = ("description", "name", "on_failure", "steps")


def _task_from(entry: Any, where: str, runtime: Runtime) -> Task:
    if not isinstance(entry, dict):
        raise PipelineDefinitionError(
            f"{where}: a step must be a mapping with name, type and the task's fields; "
            f"got a {type(entry).__name__}")
    fields = dict(entry)
    type_name = fields.pop("type", None)
    if not isinstance(type_name, str):
        installed = ", ".join(runtime.plugins.task_types.names()) or "none"
        raise PipelineDefinitionError(
            f"{where}: missing required key 'type'; installed task types: {installed}")
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
    unknown = sorted(str(k) for k in data if k not in _PIPELINE_KEYS)
    if unknown:
        raise PipelineDefinitionError(
            f"{source}: unknown key '{unknown[0]}'; allowed keys: {', '.join(_PIPELINE_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise PipelineDefinitionError(f"{source}: missing required key 'name' (a string)")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise PipelineDefinitionError(f"{source}: 'steps' must be a non-empty list of steps")
    tasks = [_task_from(s, f"{source}: steps[{i}]", runtime) for i, s in enumerate(steps)]
    on_failure = data.get("on_failure")
    handler = None if on_failure is None else _task_from(on_failure, f"{source}: on_failure",
                                                        runtime)
    description = data.get("description") or ""
    try:
        return AsyncPipeline(name, tasks, on_failure=handler, description=str(description))
    except PipelineDefinitionError as exc:
        raise PipelineDefinitionError(f"{source}: {exc}") from None


def load_pipeline(path: str | os.PathLike[str],
                  config: Runtime | Config | str | os.PathLike[str] | None = None
                  ) -> AsyncPipeline:
    """Load a YAML pipeline file. Task types are looked up in the runtime for ``config``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineDefinitionError(
            f"cannot read pipeline file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PipelineDefinitionError(f"pipeline file {path} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PipelineDefinitionError(f"{path}: not valid YAML: {exc}") from None
    return pipeline_from_dict(data, resolve_runtime(config), str(path))
