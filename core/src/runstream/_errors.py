"""The runstream error tree.

Every error runstream raises on purpose derives from :class:`RunstreamError`, and its message says
what was wrong and what to do about it::

    RunstreamError
    ├── ConfigError                 a config file, option or name is wrong
    │   └── UnknownNameError        no installed plugin registers that task type / sink / ...
    ├── PluginError                 a plugin failed to load (strict mode) or clashes with another
    ├── PipelineDefinitionError     a pipeline (Python or YAML) is malformed
    ├── ParameterError              a parameter could not be read, or a step's parameter is missing
    ├── TaskError                   a task broke its contract (e.g. yielded a non-dict)
    │   ├── StepTimeoutError        a step ran past its ``timeout``
    │   └── ReturnsError            a task did not produce the returns its step declares
    ├── RunIdError                  a run id is malformed or already used
    ├── RunNotFoundError            no run with that id in the run log store
    ├── StoreError                  the run log store failed
    ├── EventLogError               the event log failed
    ├── ExecutorUnavailableError    a remote executor cannot take a run now (queue full, no worker)
    └── RunError                    a run ended without completing; carries ``run_log``
        ├── RunFailedError          a step failed (``step``, ``error_type``, ``message``)
        └── RunCancelledError       the run was cancelled

The ``RunError`` branch lives in ``_runlog.py``, next to the ``RunLog`` it carries, so that this
module, the bottom of the core's layers, imports nothing of runstream's.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EventLogError",
    "ExecutorUnavailableError",
    "ParameterError",
    "PipelineDefinitionError",
    "PluginError",
    "ReturnsError",
    "RunIdError",
    "RunNotFoundError",
    "RunstreamError",
    "StepTimeoutError",
    "StoreError",
    "TaskError",
    "UnknownNameError",
    "public_error_message",
]


class RunstreamError(Exception):
    """Base class of every error runstream raises on purpose."""


class ConfigError(RunstreamError):
    """A configuration file, option or component name is invalid."""


class UnknownNameError(ConfigError):
    """A task type, sink, executor or store name that no installed plugin registers."""


class PluginError(RunstreamError):
    """A plugin failed to load (in strict mode) or registered a name that is already taken."""


class PipelineDefinitionError(RunstreamError):
    """A pipeline definition (Python objects or a YAML file) is malformed."""


class ParameterError(RunstreamError):
    """A parameter source could not be read, or a step needs a parameter that is not set."""


class TaskError(RunstreamError):
    """A task broke the task contract, e.g. it yielded something that is not a dict."""


class StepTimeoutError(TaskError):
    """A step ran past its ``timeout``."""


class ReturnsError(TaskError):
    """A task did not produce the returns its step declares. A definition error: the step fails
    at once and is never retried, whatever its ``retry`` says (the next attempt would not
    produce them either)."""


class RunIdError(RunstreamError):
    """A run id is malformed or already used in the run log store."""


class RunNotFoundError(RunstreamError):
    """No run with the given id exists in the run log store."""


class StoreError(RunstreamError):
    """The run log store failed to read or write."""


class EventLogError(RunstreamError):
    """The event log cannot be reached or failed to read or write (its message names the
    server, never its password)."""


class ExecutorUnavailableError(RunstreamError):
    """A remote executor cannot take a run now: its queue is full, or no worker is alive.
    HTTP front-ends answer ``503`` with ``Retry-After``; retry in a moment."""


#: Errors whose messages are about what the caller sent, never about the server: they are safe to
#: show to a client as they are.
_CALLER_ERRORS = (RunIdError, ParameterError, TaskError)


def public_error_message(error: BaseException) -> str:
    """What a client may read about ``error``, which happened in runstream's own machinery (the
    run log store, a sink, a hook) rather than in a task: its message for errors about the
    caller's input (a run id, a parameter), else ``"details in the server log"``, because the
    messages of stores and sinks name server paths and hosts. Log the full error on the server;
    show it as ``f"{type(error).__name__}: {public_error_message(error)}"``."""
    if isinstance(error, _CALLER_ERRORS):
        return str(error) or repr(error)
    return "details in the server log"
