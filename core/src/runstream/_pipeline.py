"""Pipelines: :class:`AsyncPipeline`, its sync facade :class:`Pipeline`, and run handles."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._branch import Node, Step, check_steps
from ._channel import Channel
from ._drive import drive, stop_run
from ._errors import PipelineDefinitionError
from ._events import Event, EventRecord
from ._owner import current_owner
from ._params import EnvironmentArg, merge_environment, resolve_parameters
from ._remote import drive_remote
from ._run import Run
from ._runlog import (
    FreshRunId,
    RunCancelledError,
    RunFailedError,
    RunLog,
    is_logged_run_id,
    new_run_id,
    validate_run_id,
)
from ._runtime import Runtime, resolve_runtime
from ._secrets import RunSecrets
from ._task import Task

if TYPE_CHECKING:
    from ._config import Config

__all__ = ["AsyncPipeline", "Pipeline", "RunHandle"]

ConfigArg = "Runtime | Config | str | os.PathLike[str] | None"

#: Events a run may queue for a consumer before its producer waits (backpressure).
CHANNEL_CAPACITY = 1024


class RunHandle:
    """A run in flight: iterate it for typed :class:`Event` envelopes.

    ``run_id`` is known at once. Leaving the iteration early (``break``, an exception, closing
    the iterator or cancelling the task that iterates) cancels the run. ``result()`` waits for
    the run and returns its :class:`RunLog` whatever its status; ``cancel()`` stops it. Use it
    as an async context manager to make sure the run is not left behind.
    """

    def __init__(self, run: Run, task: asyncio.Task[RunLog],
                 channel: Channel[EventRecord]) -> None:
        self._run = run
        self._task = task
        self._channel = channel
        self._iterating = False
        self._reading = False

    @property
    def run_id(self) -> str:
        return self._run.run_id

    @property
    def run_log(self) -> RunLog:
        """The live run log (read it, don't change it)."""
        return self._run.log

    def done(self) -> bool:
        return self._task.done()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def batches(self, take: Callable[[EventRecord], bool] | None = None
                      ) -> AsyncGenerator[list[EventRecord], None]:
        """The run's events as :data:`runstream.EventRecord` tuples ``(seq, ts, type, step,
        data)``, a list at a time: everything queued since the last batch. The fast way for
        sinks and transports (runstream-sse reads runs so): one async-generator hop per batch
        instead of per event, and no :class:`Event` envelope per event.

        Consume each batch before asking for the next (a batch holds its room in the run's
        bounded channel: backpressure); leaving early cancels the run, as with iterating the
        handle. A handle is iterated once, by ``batches()`` or ``async for``.

        ``take``: called with each record as the run emits it, in the run's own task, once the
        iteration has begun and while nothing is queued ahead of the record; it returns True
        if it took the record (which then is in no batch: no wake-up of the iterating task),
        False to leave it, and every record after it, to the batches until the batch holding
        it has been consumed. Records arrive in order either way. It must not block; an
        exception counts as False (leave the record, and fail on it in the batch). It bounds
        what it takes itself (leaving records once it is full is the backpressure).
        """
        if self._iterating:
            raise RuntimeError("a run handle can be iterated only once")
        self._iterating = self._reading = True
        channel = self._channel
        try:
            if take is not None:
                channel.take_directly(take)
            # The channel's batches() written out: an async generator, with its asend and its
            # weakref in the loop's set, less per run in flight (issue 16).
            while True:
                got = channel.next_batch()
                if got is None:
                    break
                if isinstance(got, list):
                    yield got
                else:
                    await got
            await asyncio.wait({self._task})
            exc = None if self._task.cancelled() else self._task.exception()
            if exc is not None:
                raise exc  # the run could not start (duplicate run id, store failure)
        finally:
            channel.take_directly(None)
            self._reading = False
            if not self._task.done():
                await self.cancel()

    async def _events(self) -> AsyncGenerator[Event, None]:
        run_id = self.run_id
        make = Event.from_record
        async for batch in self.batches():
            for record in batch:
                yield make(run_id, record)

    async def cancel(self, reason: str = "cancelled") -> RunLog:
        """Cancel the run (its running task sees ``CancelledError``) and wait until it ended.

        Someone iterating the handle still receives the closing ``run.cancelled`` event.
        """
        if not self._reading:
            self._channel.detach()  # nobody reads: the run must not wait for room
        await stop_run(self._run, self._task, reason)
        return self._run.log

    async def result(self) -> RunLog:
        """Wait for the run to end and return its run log (check ``.status``)."""
        if not self._iterating:
            self._channel.detach()  # nobody will read the events: don't hold the run back
        await asyncio.wait({self._task})
        if not self._task.cancelled():
            exc = self._task.exception()
            if exc is not None:
                raise exc
        return self._run.log

    async def __aenter__(self) -> RunHandle:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self._task.done():
            await self.cancel()


class AsyncPipeline:
    """A named list of steps run one after another, with an optional ``on_failure`` task.

    A step is a task, or a composite node (:class:`Parallel`, :class:`Map`,
    :class:`Conditional`) that runs branches of steps.

    ``on_failure`` runs when a step fails, with the parameters as they were; its events stream
    like any step's. The run still ends ``failed``: the handler cleans up or reports, it does
    not turn a failure into a success.

    ``rerun_on_worker_loss`` (remote executors): how many times a run whose worker was lost
    (killed mid-run) is run again from the start on another worker, its stream going on after a
    ``run.warning`` that says so (docs/taskiq.md); 0, the default: it ends ``failed``
    (``WorkerLost``). Only for a pipeline that can safely run twice.
    """

    def __init__(self, name: str, steps: Sequence[Step], on_failure: Task | None = None,
                 description: str = "", *, ref: str | None = None,
                 rerun_on_worker_loss: int = 0) -> None:
        if not isinstance(name, str) or not name.strip():
            raise PipelineDefinitionError("a pipeline needs a non-empty name")
        if isinstance(steps, (Task, Node)) or not isinstance(steps, Sequence) or not steps:
            raise PipelineDefinitionError(
                f"pipeline '{name}': steps must be a non-empty list of tasks")
        check_steps(steps, on_failure, f"pipeline '{name}'", "")
        if (not isinstance(rerun_on_worker_loss, int) or isinstance(rerun_on_worker_loss, bool)
                or not 0 <= rerun_on_worker_loss <= 10):
            raise PipelineDefinitionError(
                f"pipeline '{name}': rerun_on_worker_loss must be an integer from 0 to 10, got "
                f"{rerun_on_worker_loss!r}")
        self.rerun_on_worker_loss = rerun_on_worker_loss
        self.name = name
        self.steps: tuple[Step, ...] = tuple(steps)
        self.on_failure = on_failure
        self.description = description
        #: Where a worker process finds this pipeline (a remote executor runs it there):
        #: ``module:function`` returning it, or a YAML pipeline file's path. Set by
        #: :func:`load_pipeline_ref` and :func:`load_pipeline`; None: it cannot be run remotely.
        self.ref = ref

    def _start(self, run: Run) -> Coroutine[Any, Any, RunLog]:
        """The coroutine that drives ``run``: here, or on a remote executor's workers."""
        if not run.runtime.executor.remote:
            return drive(run, self.steps, self.on_failure)
        if self.ref is None:
            if run.channel is not None:
                run.channel.close()
            raise PipelineDefinitionError(
                f"pipeline '{self.name}' cannot run on the '{type(run.runtime.executor).__name__}'"
                " executor: workers get a pipeline by reference, never pickled. Load it with "
                "runstream.load_pipeline_ref('package.module:function') (a module-level function "
                "returning it) or runstream.load_pipeline('pipeline.yaml'); a pipeline built in a "
                "closure, a lambda or a local scope cannot reach a worker")
        return drive_remote(run, self.ref, self.rerun_on_worker_loss)

    def __repr__(self) -> str:
        return f"AsyncPipeline(name={self.name!r}, steps={[s.name for s in self.steps]!r})"

    def _prepare(self, parameters: Mapping[str, Any] | None, run_id: str | None,
                 config: Runtime | Config | str | os.PathLike[str] | None,
                 parameters_file: str | os.PathLike[str] | None,
                 channel: Channel[EventRecord] | None, environment: EnvironmentArg,
                 owner: str | None) -> Run:
        runtime = resolve_runtime(config)
        if owner is not None and (not isinstance(owner, str) or not owner):
            raise TypeError(f"owner must be a non-empty string or None, got {owner!r}")
        settings = runtime.config.parameters
        params = resolve_parameters(
            parameters, parameters_file,
            environment=merge_environment(settings.environment, environment))
        secrets = RunSecrets()
        params = secrets.unwrap(params, settings.secret)
        rid = new_run_id() if run_id is None else validate_run_id(run_id)
        log = RunLog(run_id=rid, pipeline=self.name, parameters=dict(secrets.mask(params)),
                     owner=owner, process=current_owner())
        run = Run(runtime, log, params, channel)
        run.secrets = secrets
        run.id_given = run_id is not None and not isinstance(run_id, FreshRunId)
        run.id_logged = is_logged_run_id(run_id)
        run.owns_runtime = runtime is not config
        return run

    async def execute(
        self,
        parameters: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        config: Runtime | Config | str | os.PathLike[str] | None = None,
        parameters_file: str | os.PathLike[str] | None = None,
        *,
        environment: EnvironmentArg = False,
        owner: str | None = None,
    ) -> RunLog:
        """Run the pipeline to its end and return its run log.

        ``environment``: which ``RUNSTREAM_PRM_<name>`` variables to read as parameters:
        ``True`` (all), ``False`` (default: none, besides the config's
        ``parameters.environment``) or a list of names. ``owner``: the caller identity the run
        belongs to (``RunLog.owner``; HTTP endpoints serve a run only to its owner).
        Parameters wrapped in :class:`Secret` (or named in the config's ``parameters.secret``)
        reach the tasks but are never recorded or emitted.

        Raises :class:`RunFailedError` (with ``.run_log``) if a step failed. Cancelling the
        calling task cancels the run (recorded as ``cancelled``) and re-raises.
        """
        run = self._prepare(parameters, run_id, config, parameters_file, None, environment,
                            owner)
        # Run in a child task: the run's context (contextvars) stays out of the caller's.
        task = asyncio.create_task(self._start(run), name=f"runstream-run-{run.run_id}")
        run.runtime.loop_watch.track(task)
        try:
            log = await asyncio.shield(task)
        except asyncio.CancelledError:
            await stop_run(run, task, "cancelled")
            raise
        if log.status == "failed":
            raise RunFailedError(log)
        return log

    def stream(
        self,
        parameters: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        config: Runtime | Config | str | os.PathLike[str] | None = None,
        parameters_file: str | os.PathLike[str] | None = None,
        *,
        environment: EnvironmentArg = False,
        owner: str | None = None,
    ) -> RunHandle:
        """Start the run now and return its handle (see :class:`RunHandle`).

        ``environment`` and ``owner``: see :meth:`execute`.

        Must be called with an event loop running.
        """
        channel: Channel[EventRecord] = Channel(CHANNEL_CAPACITY)
        run = self._prepare(parameters, run_id, config, parameters_file, channel, environment,
                            owner)
        task = asyncio.get_running_loop().create_task(
            self._start(run), name=f"runstream-run-{run.run_id}")
        run.runtime.loop_watch.track(task)
        return RunHandle(run, task, channel)

    async def execute_streaming(
        self,
        parameters: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        config: Runtime | Config | str | os.PathLike[str] | None = None,
        parameters_file: str | os.PathLike[str] | None = None,
        *,
        environment: EnvironmentArg = False,
        owner: str | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Run the pipeline and yield the dicts its tasks emit, exactly as emitted.

        ``environment`` and ``owner``: see :meth:`execute`.

        If a step fails, every event it emitted first is yielded, then
        :class:`RunFailedError` is raised. Closing the generator, or cancelling the task that
        iterates it, cancels the run.
        """
        handle = self.stream(parameters, run_id, config, parameters_file,
                             environment=environment, owner=owner)
        batches = handle.batches()
        try:
            async for batch in batches:
                for record in batch:
                    if record[2] == "step.event":
                        yield record[4]
        finally:
            await batches.aclose()
        log = handle.run_log
        if log.status == "failed":
            raise RunFailedError(log)
        if log.status == "cancelled":
            raise RunCancelledError(log)


class Pipeline:
    """Sync facade over :class:`AsyncPipeline`, for scripts and the CLI.

    ``execute()`` runs the pipeline in a fresh event loop; call it where no loop is running.
    """

    def __init__(self, name: str, steps: Sequence[Step], on_failure: Task | None = None,
                 description: str = "", *, ref: str | None = None,
                 rerun_on_worker_loss: int = 0) -> None:
        self._pipeline = AsyncPipeline(name, steps, on_failure, description, ref=ref,
                                       rerun_on_worker_loss=rerun_on_worker_loss)

    @property
    def name(self) -> str:
        return self._pipeline.name

    @property
    def steps(self) -> tuple[Step, ...]:
        return self._pipeline.steps

    @property
    def on_failure(self) -> Task | None:
        return self._pipeline.on_failure

    def as_async(self) -> AsyncPipeline:
        return self._pipeline

    def execute(
        self,
        parameters: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        config: Runtime | Config | str | os.PathLike[str] | None = None,
        parameters_file: str | os.PathLike[str] | None = None,
        *,
        environment: EnvironmentArg = False,
        owner: str | None = None,
    ) -> RunLog:
        """Run to the end in a new event loop; see :meth:`AsyncPipeline.execute`."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("Pipeline.execute() cannot run inside an event loop; "
                               "use AsyncPipeline and `await pipeline.execute()` there")
        return asyncio.run(self._pipeline.execute(parameters, run_id, config, parameters_file,
                                                  environment=environment, owner=owner))
