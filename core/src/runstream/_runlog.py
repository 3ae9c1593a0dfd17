"""The run log: what a run did, step by step, kept by a run log store."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._errors import RunIdError, RunstreamError
from ._json import model_json

__all__ = [
    "ErrorInfo",
    "RunCancelledError",
    "RunError",
    "RunFailedError",
    "RUN_ID_PATTERN",
    "RunLog",
    "RunStatus",
    "RunSummary",
    "StepAttempt",
    "StepLog",
    "StepStatus",
    "new_run_id",
    "validate_run_id",
]

#: ``queued``: submitted to a remote executor (a worker pool) and not yet taken by a worker.
RunStatus = Literal["queued", "running", "completed", "failed", "cancelled", "abandoned"]
StepStatus = Literal["running", "completed", "failed", "cancelled"]

#: Run ids are safe in paths, URLs, SSE fields and SQL: 1-128 chars of letters, digits, ``._-``,
#: starting with a letter or digit.
RUN_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_RUN_ID_RE: Final = re.compile(RUN_ID_PATTERN)

_MODEL_CONFIG = ConfigDict(defer_build=True, validate_assignment=False)


def now() -> datetime:
    return datetime.now(UTC)


class FreshRunId(str):
    """A run id :func:`new_run_id` made: passed as a run's ``run_id`` as it is, the run needs
    no confirmation from the store that the id is free (its 128 random bits make it so), so it
    starts even when the store is down, like a run given no id (runstream-sse picks its runs'
    ids itself, for the ``X-Run-Id`` header). Any other string is a caller's choice."""

    __slots__ = ()


class _LoggedRunId(str):
    """See :func:`logged_run_id`."""

    __slots__ = ()


class _LoggedFreshRunId(FreshRunId, _LoggedRunId):
    __slots__ = ()


def logged_run_id(run_id: str) -> str:
    """``run_id``, marked as the id of a run its caller has just created in the runtime's event
    log with the run's pipeline and owner, and nothing else (``EventLog.create``), before it
    starts the run with it: a run on a remote executor (runstream-taskiq) then takes that run
    over as it is, instead of trying to create it again and reading it back (two round trips).
    An id from :func:`new_run_id` stays a fresh one. runstream-sse passes its runs' ids so."""
    if isinstance(run_id, FreshRunId):
        return _LoggedFreshRunId(run_id)
    return _LoggedRunId(run_id)


def is_logged_run_id(run_id: object) -> bool:
    return isinstance(run_id, _LoggedRunId)


def new_run_id() -> str:
    """A fresh run id, ``YYYYmmdd-HHMMSS-`` and 32 random hex digits: sortable by start time
    (to the second), and its 128 random bits make it unique and impossible to guess.

    An id is not a password: it shows up in logs, URLs and ``X-Run-Id`` headers. What a client
    may read is decided by the run's owner (see docs/security.md), not by the id's secrecy.
    """
    return FreshRunId(time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-"
                      + secrets.token_hex(16))


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it matches :data:`RUN_ID_PATTERN`, else raise ``RunIdError``."""
    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id) or ".." in run_id:
        raise RunIdError(
            f"invalid run id {run_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '..')"
        )
    return run_id


class ErrorInfo(BaseModel):
    """Why a run or step failed."""

    model_config = _MODEL_CONFIG
    type: str
    message: str
    step: str | None = None

    @classmethod
    def from_exception(cls, error: BaseException, step: str | None = None,
                       redact: Callable[[str], str] | None = None) -> ErrorInfo:
        """The error info of ``error`` (raised in ``step``, or outside any step): its type
        name and message (its ``repr`` when the message is empty), passed through ``redact``
        (which removes secret values) if given."""
        message = str(error) or repr(error)
        return cls(type=type(error).__name__,
                   message=message if redact is None else redact(message), step=step)

    def event_data(self) -> dict[str, Any]:
        """The data of a ``step.failed`` / ``run.failed`` event: ``error_type``, ``message``,
        ``step``. Every producer of those events (the engine, runstream-sse) builds it here."""
        return {"error_type": self.type, "message": self.message, "step": self.step}


class StepAttempt(BaseModel):
    """One attempt at running a step."""

    model_config = _MODEL_CONFIG
    n: int = 1
    start: datetime = Field(default_factory=now)
    end: datetime | None = None
    status: StepStatus = "running"
    message: str | None = None
    input_parameters: dict[str, Any] = Field(default_factory=dict)
    output_parameters: dict[str, Any] = Field(default_factory=dict)


class StepLog(BaseModel):
    """A step's record: its status and every attempt."""

    model_config = _MODEL_CONFIG
    name: str
    status: StepStatus = "running"
    attempts: list[StepAttempt] = Field(default_factory=list)


class RunLog(BaseModel):
    """A run's full record, as stored by the run log store."""

    model_config = _MODEL_CONFIG
    run_id: str
    pipeline: str
    status: RunStatus = "running"
    parameters: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, StepLog] = Field(default_factory=dict)
    started: datetime = Field(default_factory=now)
    ended: datetime | None = None
    error: ErrorInfo | None = None
    warnings: list[str] = Field(
        default_factory=list,
        description="Problems that did not fail the run, e.g. a sink that raised and was dropped.",
    )
    owner: str | None = Field(
        default=None,
        description="Who the run belongs to: the caller identity given as `owner=` when it was "
                    "started (e.g. a user or session id). HTTP endpoints serve a run only to its "
                    "owner (see docs/security.md). None: no owner (CLI and batch runs).")
    process: str | None = Field(
        default=None,
        description="host:pid:start of the process that ran it; lets a restarted process mark "
                    "runs whose process died as `abandoned`.",
    )

    @property
    def message(self) -> str | None:
        """The failure message, if the run failed."""
        return self.error.message if self.error else None

    def to_json(self, *, indent: int | None = None) -> str:
        """The record as JSON text, whatever its parameters hold: values JSON cannot hold are
        written as their ``repr``, NaN as ``null``, a lone surrogate as U+FFFD."""
        return model_json(self, indent=indent)


class RunSummary(BaseModel):
    """One line of ``runstream runs ls``."""

    model_config = _MODEL_CONFIG
    run_id: str
    pipeline: str
    status: RunStatus
    started: datetime
    ended: datetime | None = None


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
