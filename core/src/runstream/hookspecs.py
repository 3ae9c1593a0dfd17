"""runstream's pluggy hook specifications.

A plugin is a module (found through the ``runstream`` entry-point group) with functions marked
``@runstream.hookimpl`` whose names match these specs. Registration hooks are called once, when a
:class:`runstream.Runtime` is built; lifecycle hooks are called for every run and step. A lifecycle
hook implementation may be ``async``: runstream awaits what it returns. An exception raised by
``before_node_run`` or ``after_node_run`` fails the step it was called for, one raised by
``before_run`` fails the run; errors of ``on_node_error`` and ``after_run`` are reported in the run
log's ``warnings`` and do not change the outcome. Registration hooks must be plain functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._runlog import RunLog, StepLog

__all__ = [
    "Register",
    "after_node_run",
    "after_run",
    "before_node_run",
    "before_run",
    "hookimpl",
    "hookspec",
    "on_node_error",
    "register_event_logs",
    "register_executors",
    "register_run_log_stores",
    "register_sinks",
    "register_task_types",
]

hookspec = pluggy.HookspecMarker("runstream")
hookimpl = pluggy.HookimplMarker("runstream")

#: ``register(name, cls)``: adds ``cls`` under ``name``; a name already taken raises PluginError.
#: ``cls`` may be a reference, ``"package.module:Class"``, imported only when a config or pipeline
#: first uses ``name``: registering by reference keeps a plugin's SDK out of every process that
#: does not use it (a reference that does not import is a PluginError at that point).
Register = Callable[[str, type[Any] | str], None]


@hookspec
def register_task_types(register: Register) -> None:
    """Register task types: call ``register("my-type", MyTask)`` for each.

    ``MyTask`` subclasses :class:`runstream.Task`. Fires once when a runtime is built. The name is
    what YAML pipelines use as a step's ``type:``.
    """


@hookspec
def register_sinks(register: Register) -> None:
    """Register event sinks: call ``register("my-sink", MySink)`` for each.

    ``MySink`` subclasses :class:`runstream.Sink`; its fields are the options accepted in the
    config file's ``sinks:`` entries with ``type: my-sink``. Fires once when a runtime is built.
    """


@hookspec
def register_executors(register: Register) -> None:
    """Register executors: call ``register("my-executor", MyExecutor)`` for each.

    ``MyExecutor`` subclasses :class:`runstream.Executor`; the config's ``executor: {type: ...}``
    picks one. Fires once when a runtime is built.
    """


@hookspec
def register_run_log_stores(register: Register) -> None:
    """Register run log stores: call ``register("my-store", MyStore)`` for each.

    ``MyStore`` subclasses :class:`runstream.RunLogStore`; the config's
    ``run_log_store: {type: ...}`` picks one. Fires once when a runtime is built.
    """


@hookspec
def register_event_logs(register: Register) -> None:
    """Register event logs: call ``register("my-log", MyEventLog)`` for each.

    ``MyEventLog`` subclasses :class:`runstream.EventLog`; the config's
    ``event_log: {type: ...}`` picks one. Fires once when a runtime is built.
    """


@hookspec
def before_run(run_log: RunLog) -> Any:
    """Fires when a run starts, after ``run.started`` is emitted and before its first step.

    ``run_log`` is the live record (status ``running``). May return an awaitable.
    """


@hookspec
def after_run(run_log: RunLog) -> Any:
    """Fires when a run has ended (completed, failed or cancelled), before the run log is saved
    for the last time. ``run_log.status`` says how it ended. May return an awaitable; errors are
    reported in ``run_log.warnings`` and do not change the outcome."""


@hookspec
def before_node_run(run_log: RunLog, step: str, parameters: Mapping[str, Any]) -> Any:
    """Fires before each step runs, after ``step.started``; ``parameters`` are the run's
    parameters as the step will see them. May return an awaitable."""


@hookspec
def after_node_run(run_log: RunLog, step: str, step_log: StepLog) -> Any:
    """Fires after a step completed successfully, before ``step.completed``. May return an
    awaitable."""


@hookspec
def on_node_error(run_log: RunLog, step: str, error: BaseException) -> Any:
    """Fires when a step fails, before ``step.failed`` is emitted. May return an awaitable; its
    own errors are reported in ``run_log.warnings``."""
