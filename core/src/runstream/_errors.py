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
    │   └── StepTimeoutError        a step ran past its ``timeout``
    ├── RunIdError                  a run id is malformed or already used
    ├── RunNotFoundError            no run with that id in the run log store
    ├── StoreError                  the run log store failed
    └── RunError                    a run ended without completing; carries ``run_log``
        ├── RunFailedError          a step failed (``step``, ``error_type``, ``message``)
        └── RunCancelledError       the run was cancelled
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._runlog import RunLog

__all__ = [
    "ConfigError",
    "ParameterError",
    "PipelineDefinitionError",
    "PluginError",
    "RunCancelledError",
    "RunError",
    "RunFailedError",
    "RunIdError",
    "RunNotFoundError",
    "RunstreamError",
    "StepTimeoutError",
    "StoreError",
    "TaskError",
    "UnknownNameError",
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


class RunIdError(RunstreamError):
    """A run id is malformed or already used in the run log store."""


class RunNotFoundError(RunstreamError):
    """No run with the given id exists in the run log store."""


class StoreError(RunstreamError):
    """The run log store failed to read or write."""


class RunError(RunstreamError):
    """A run ended without completing. ``run_log`` holds its full record."""

    def __init__(self, message: str, run_log: RunLog) -> None:
        super().__init__(message)
        self.run_log = run_log


class RunFailedError(RunError):
    """A step of the run failed; ``step``, ``error_type`` and ``message`` say which and why."""

    def __init__(self, run_log: RunLog) -> None:
        err = run_log.error
        self.step = err.step if err else None
        self.error_type = err.type if err else "Error"
        self.message = err.message if err else "the run failed"
        where = f" in step '{self.step}'" if self.step else ""
        super().__init__(
            f"run {run_log.run_id} of pipeline '{run_log.pipeline}' failed{where}: "
            f"{self.error_type}: {self.message}",
            run_log,
        )


class RunCancelledError(RunError):
    """The run was cancelled before it finished."""

    def __init__(self, run_log: RunLog) -> None:
        super().__init__(f"run {run_log.run_id} of pipeline '{run_log.pipeline}' was cancelled",
                         run_log)
