"""runstream: run async pipelines and stream what their tasks emit.

Everything public is importable from here. Names are loaded on first use, so that
``import runstream`` stays cheap for CLIs and plugins that need only a part of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._branch import (
        Branch as Branch,
        Node as Node,
    )
    from ._config import (
        ComponentConfig as ComponentConfig,
        Config as Config,
        Limits as Limits,
        ParametersConfig as ParametersConfig,
    )
    from ._errors import (
        ConfigError as ConfigError,
        EventLogError as EventLogError,
        ExecutorUnavailableError as ExecutorUnavailableError,
        ParameterError as ParameterError,
        PipelineDefinitionError as PipelineDefinitionError,
        PluginError as PluginError,
        ReturnsError as ReturnsError,
        RunIdError as RunIdError,
        RunNotFoundError as RunNotFoundError,
        RunstreamError as RunstreamError,
        StepTimeoutError as StepTimeoutError,
        StoreError as StoreError,
        TaskError as TaskError,
        UnknownNameError as UnknownNameError,
        public_error_message as public_error_message,
    )
    from ._eventlog import (
        CancelHandler as CancelHandler,
        EventLog as EventLog,
        LoggedRun as LoggedRun,
    )
    from ._eventlog_memory import MemoryEventLog as MemoryEventLog
    from ._events import (
        EVENT_TYPES as EVENT_TYPES,
        TERMINAL_EVENT_TYPES as TERMINAL_EVENT_TYPES,
        Event as Event,
        EventRecord as EventRecord,
        EventType as EventType,
    )
    from ._executor import (
        Executor as Executor,
        LocalExecutor as LocalExecutor,
        Submission as Submission,
    )
    from ._imports import (
        import_object as import_object,
        lazy_exports as lazy_exports,
    )
    from ._nodes import (
        Conditional as Conditional,
        Map as Map,
        Parallel as Parallel,
    )
    from ._params import resolve_parameters as resolve_parameters
    from ._pipeline import (
        AsyncPipeline as AsyncPipeline,
        Pipeline as Pipeline,
        RunHandle as RunHandle,
    )
    from ._plugins import (
        PluginInfo as PluginInfo,
        Plugins as Plugins,
        load_plugins as load_plugins,
    )
    from ._refs import load_pipeline_ref as load_pipeline_ref
    from ._retry import Retry as Retry
    from ._runlog import (
        RUN_ID_PATTERN as RUN_ID_PATTERN,
        ErrorInfo as ErrorInfo,
        RunCancelledError as RunCancelledError,
        RunError as RunError,
        RunFailedError as RunFailedError,
        RunLog as RunLog,
        RunStatus as RunStatus,
        RunSummary as RunSummary,
        StepAttempt as StepAttempt,
        StepLog as StepLog,
        StepStatus as StepStatus,
        logged_run_id as logged_run_id,
        new_run_id as new_run_id,
        validate_run_id as validate_run_id,
    )
    from ._runtime import (
        Runtime as Runtime,
        State as State,
    )
    from ._secrets import Secret as Secret
    from ._sinks import Sink as Sink
    from ._store import RunLogStore as RunLogStore
    from ._task import (
        SyncTaskContext as SyncTaskContext,
        Task as Task,
        TaskContext as TaskContext,
        current_task_context as current_task_context,
    )
    from ._worker import (
        end_lost_run as end_lost_run,
        run_submission as run_submission,
    )
    from ._yaml_pipeline import (
        load_pipeline as load_pipeline,
        pipeline_from_dict as pipeline_from_dict,
    )
    from .hookspecs import hookimpl as hookimpl

__version__ = "0.1.0"

#: name -> the private module that defines it, read from the ``TYPE_CHECKING`` imports above:
#: those imports are the one list of the public names (mypy reads them; ``__all__`` and the lazy
#: loading below are derived from them), built on first use so ``import runstream`` stays cheap.
_where: dict[str, str] | None = None


def _public() -> dict[str, str]:
    global _where
    if _where is None:
        import ast
        from pathlib import Path

        source = Path(__file__).read_text(encoding="utf-8")
        found: dict[str, str] = {}
        for node in ast.parse(source).body:
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                for stmt in node.body:
                    if isinstance(stmt, ast.ImportFrom) and stmt.module:
                        for alias in stmt.names:
                            found[alias.asname or alias.name] = stmt.module
        _where = found
    return _where


def __getattr__(name: str) -> Any:
    if name == "__all__":
        value: Any = sorted([*_public(), "__version__"])
    else:
        module = _public().get(name)
        if module is None:
            raise AttributeError(f"module 'runstream' has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_public()))
