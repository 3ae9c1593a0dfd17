"""runstream: run async pipelines and stream what their tasks emit.

Everything public is importable from here. Names are loaded on first use, so that
``import runstream`` stays cheap for CLIs and plugins that need only a part of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._branch import Branch, Node
    from ._config import ComponentConfig, Config, Limits, ParametersConfig
    from ._errors import (
        ConfigError,
        ParameterError,
        PipelineDefinitionError,
        PluginError,
        RunCancelledError,
        RunError,
        RunFailedError,
        RunIdError,
        RunNotFoundError,
        RunstreamError,
        StepTimeoutError,
        StoreError,
        TaskError,
        UnknownNameError,
        public_error_message,
    )
    from ._events import EVENT_TYPES, TERMINAL_EVENT_TYPES, Event, EventType
    from ._executor import Executor, LocalExecutor
    from ._imports import import_object
    from ._nodes import Conditional, Map, Parallel
    from ._params import resolve_parameters
    from ._pipeline import AsyncPipeline, Pipeline, RunHandle
    from ._plugins import PluginInfo, Plugins, load_plugins
    from ._retry import Retry
    from ._runlog import (
        RUN_ID_PATTERN,
        ErrorInfo,
        RunLog,
        RunStatus,
        RunSummary,
        StepAttempt,
        StepLog,
        StepStatus,
        new_run_id,
        validate_run_id,
    )
    from ._runtime import Runtime
    from ._secrets import Secret
    from ._sinks import Sink
    from ._store import RunLogStore
    from ._task import SyncTaskContext, Task, TaskContext, current_task_context
    from ._yaml_pipeline import load_pipeline, pipeline_from_dict
    from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "AsyncPipeline",
    "Branch",
    "ComponentConfig",
    "Conditional",
    "Config",
    "ConfigError",
    "EVENT_TYPES",
    "ErrorInfo",
    "Event",
    "EventType",
    "Executor",
    "Limits",
    "LocalExecutor",
    "Map",
    "Node",
    "Parallel",
    "ParameterError",
    "ParametersConfig",
    "Pipeline",
    "PipelineDefinitionError",
    "PluginError",
    "PluginInfo",
    "Plugins",
    "RUN_ID_PATTERN",
    "Retry",
    "RunCancelledError",
    "RunError",
    "RunFailedError",
    "RunHandle",
    "RunIdError",
    "RunLog",
    "RunLogStore",
    "RunNotFoundError",
    "RunStatus",
    "RunSummary",
    "RunstreamError",
    "Runtime",
    "Secret",
    "Sink",
    "StepAttempt",
    "StepLog",
    "StepStatus",
    "StepTimeoutError",
    "StoreError",
    "SyncTaskContext",
    "TERMINAL_EVENT_TYPES",
    "Task",
    "TaskContext",
    "TaskError",
    "UnknownNameError",
    "__version__",
    "current_task_context",
    "hookimpl",
    "import_object",
    "load_pipeline",
    "load_plugins",
    "new_run_id",
    "pipeline_from_dict",
    "public_error_message",
    "resolve_parameters",
    "validate_run_id",
]

_WHERE = {
    "ComponentConfig": "_config", "Config": "_config", "Limits": "_config",
    "ParametersConfig": "_config",
    "ConfigError": "_errors", "ParameterError": "_errors", "PipelineDefinitionError": "_errors",
    "PluginError": "_errors", "RunCancelledError": "_errors", "RunError": "_errors",
    "RunFailedError": "_errors", "RunIdError": "_errors", "RunNotFoundError": "_errors",
    "RunstreamError": "_errors", "StepTimeoutError": "_errors",
    "StoreError": "_errors", "TaskError": "_errors",
    "UnknownNameError": "_errors", "public_error_message": "_errors",
    "EVENT_TYPES": "_events", "TERMINAL_EVENT_TYPES": "_events", "Event": "_events",
    "EventType": "_events",
    "Executor": "_executor", "LocalExecutor": "_executor",
    "import_object": "_imports",
    "Branch": "_branch", "Node": "_branch",
    "Conditional": "_nodes", "Map": "_nodes", "Parallel": "_nodes",
    "Retry": "_retry",
    "resolve_parameters": "_params",
    "AsyncPipeline": "_pipeline", "Pipeline": "_pipeline", "RunHandle": "_pipeline",
    "PluginInfo": "_plugins", "Plugins": "_plugins", "load_plugins": "_plugins",
    "RUN_ID_PATTERN": "_runlog", "ErrorInfo": "_runlog", "RunLog": "_runlog",
    "RunSummary": "_runlog", "RunStatus": "_runlog", "StepStatus": "_runlog",
    "validate_run_id": "_runlog", "StepAttempt": "_runlog", "StepLog": "_runlog",
    "new_run_id": "_runlog",
    "Runtime": "_runtime",
    "Secret": "_secrets",
    "Sink": "_sinks",
    "RunLogStore": "_store",
    "SyncTaskContext": "_task", "Task": "_task", "TaskContext": "_task",
    "current_task_context": "_task",
    "load_pipeline": "_yaml_pipeline", "pipeline_from_dict": "_yaml_pipeline",
    "hookimpl": "hookspecs",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'runstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
