"""Executors run a pipeline's task steps; ``local`` runs them in this process's event loop.

A *remote* executor (``remote = True``, e.g. runstream-taskiq's ``taskiq``) runs whole runs
elsewhere, on a pool of worker processes: ``stream()``, ``execute()`` and
``execute_streaming()`` then record the run as ``queued``, :meth:`Executor.submit` it, and
follow its records through the shared event log (see ``_remote``); a worker runs it with
:func:`runstream.run_submission`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ._hotpath import fast_private_attributes

if TYPE_CHECKING:
    from ._eventlog import EventLog
    from ._runlog import RunLog
    from ._store import RunLogStore
    from ._task import Task, TaskContext

__all__ = ["Executor", "LocalExecutor", "Submission"]


@dataclasses.dataclass(frozen=True, slots=True)
class Submission:
    """A run handed to a remote executor: everything a worker needs to run it, as plain JSON
    data (a pipeline travels by reference, never pickled)."""

    #: ``module:function`` returning the pipeline, or the path of a YAML pipeline file.
    pipeline_ref: str
    #: The pipeline's name (for messages).
    pipeline: str
    run_id: str
    #: The run's parameters, resolved; secret ones are listed in ``secret_names``.
    parameters: dict[str, Any]
    owner: str | None
    #: Parameters whose values are secret (masked in every record, as in the submitting
    #: process).
    secret_names: tuple[str, ...] = ()
    #: How many times the run may be run again from the start if its worker is lost (the
    #: pipeline's ``rerun_on_worker_loss``).
    reruns: int = 0
    #: Which attempt this is: 1, or more when a lost worker's run was put back on the queue
    #: (the executor sets it; :func:`runstream.run_submission` then continues the run's
    #: stream after the last event sent).
    attempt: int = 1

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Submission:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["secret_names"] = tuple(values.get("secret_names", ()))
        return cls(**values)


#: What a remote executor's worker calls for each submission it takes (runstream passes
#: :func:`runstream.run_submission` bound to the worker's runtime).
RunSubmission = Callable[[Submission], Awaitable["RunLog"]]


class Executor(BaseModel):
    """Base class of executors: how a task step is run.

    Fields are the options of ``executor: {type: name, ...}`` in the config file. The engine
    walks the pipeline, emits events and keeps the run log; the executor only runs one task
    and returns its outputs.

    A remote executor sets ``remote = True`` and implements :meth:`submit` (and, for
    ``runstream worker``, :meth:`serve`); see docs/architecture.md ("Remote executors").
    """

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # A subclass's private attributes (``_x = PrivateAttr()``), read without pydantic's
        # __getattr__ (see _hotpath).
        fast_private_attributes(cls)

    model_config = ConfigDict(extra="forbid", defer_build=True, allow_inf_nan=False)

    #: Whether runs go to other processes (:meth:`submit`) instead of running here.
    remote: ClassVar[bool] = False

    def run_task(self, task: Task, ctx: TaskContext) -> Awaitable[Mapping[str, Any] | None]:
        """Run one task step and return its outputs (an ``async def`` implements it)."""
        raise NotImplementedError

    def check_services(self, event_log: EventLog, store: RunLogStore) -> None:
        """Called when a runtime is built: raise :class:`runstream.ConfigError` if this
        executor cannot work with these (a remote one needs a shared event log and store)."""

    async def refusal(self) -> str | None:
        """Why a new run cannot be submitted now (queue full, no live worker), or None. HTTP
        front-ends answer ``503`` with ``Retry-After`` instead of starting a stream."""
        return None

    async def submit(self, submission: Submission) -> None:
        """Hand a run to the workers (remote executors). Raises
        :class:`runstream.ExecutorUnavailableError` when it cannot be queued now."""
        raise NotImplementedError(f"{type(self).__name__} does not run whole runs remotely")

    async def lost(self, run_id: str) -> str | None:
        """Whether the worker running ``run_id`` is gone (its lease ran out): a reason, once, to
        the one caller that claims the loss (it then ends the run ``failed``, ``WorkerLost``);
        None while the run is queued, running fine, or already claimed."""
        return None

    @property
    def lost_check_interval(self) -> float:
        """Seconds between two :meth:`lost` checks by a process that follows a remote run."""
        return 1.0

    async def serve(self, runtime: Any, run: RunSubmission, *, concurrency: int,
                    grace_period: float) -> None:
        """Be a worker (``runstream worker``): take submissions and call ``run`` for each, at
        most ``concurrency`` at once, until cancelled; then finish or hand back the runs in
        flight within ``grace_period`` seconds."""
        raise NotImplementedError(f"{type(self).__name__} has no workers")

    async def aclose(self) -> None:
        """Release connections (called by :meth:`runstream.Runtime.aclose`)."""


class LocalExecutor(Executor):
    """Runs each task in the current event loop (sync task types in a worker thread)."""

    def run_task(self, task: Task, ctx: TaskContext) -> Awaitable[Mapping[str, Any] | None]:
        # The task's own coroutine, not one around it: one frame less per run in flight.
        return task.execute(ctx)
