"""Task types: the base class plugins subclass, and the context a running task gets."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Collection, Mapping
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._errors import ParameterError, TaskError
from ._hotpath import fast_private_attributes
from ._names import STEP_NAME_RULE, is_step_name
from ._retry import Retry
from ._threads import TaskThreads

__all__ = ["SyncTaskContext", "Task", "TaskContext", "current_task_context"]

R = TypeVar("R")

logger = logging.getLogger("runstream")

_current_task: contextvars.ContextVar[TaskContext] = contextvars.ContextVar(
    "runstream_current_task"
)


def current_task_context() -> TaskContext:
    """The :class:`TaskContext` of the step running in this asyncio task.

    Raises ``LookupError`` outside a running step.
    """
    return _current_task.get()


class Task(BaseModel):
    """Base class of every task type.

    A task type is a pydantic model: its fields are the step's options (``name`` and ``returns``
    always; anything else the subclass declares), which makes it usable from Python and, once
    registered under a name through ``register_task_types``, from YAML pipelines.

    Implement ``async execute(ctx)`` (emit events with ``await ctx.emit({...})``), or a sync
    ``run(ctx)`` that runs in a worker thread (emit with ``ctx.emit({...})``). Either returns a
    mapping that holds at least the names in ``returns``, or ``None`` when ``returns`` is empty.
    """

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # A subclass's private attributes (``_x = PrivateAttr()``), read without pydantic's
        # __getattr__ (see _hotpath).
        fast_private_attributes(cls)

    # allow_inf_nan=False: `timeout: .inf` or a number too big for a float is a mistake, not "no
    # limit" (that is null); every task type's float options inherit this.
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, defer_build=True,
                              allow_inf_nan=False)

    name: str = Field(description="The step name: letters, digits, '_' and '-'.")
    returns: list[str] = Field(default_factory=list,
                               description="Output parameters this step adds for later steps.")
    retry: Retry | None = Field(
        default=None,
        description="Run the step again when it fails (see runstream.Retry); default: once.")
    timeout: float | None = Field(
        default=None, gt=0,
        description="Seconds an attempt may take; past it the step fails with "
                    "StepTimeoutError (which `retry` can retry). Default: no limit.")

    @field_validator("name")
    @classmethod
    def _name_is_safe(cls, value: str) -> str:
        if not is_step_name(value):
            raise ValueError(f"step name {value!r} must be {STEP_NAME_RULE}")
        return value

    @field_validator("returns")
    @classmethod
    def _returns_are_identifiers(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.isidentifier():
                raise ValueError(f"return name {name!r} is not a valid Python identifier")
        if len(set(value)) != len(value):
            raise ValueError("return names must be unique")
        return value

    async def execute(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        """Run the task. The default runs :meth:`run` in a worker thread."""
        if type(self).run is Task.run:
            raise NotImplementedError(
                f"task type {type(self).__name__} implements neither execute() nor run()"
            )
        return await ctx.run_sync(self.run)

    def run(self, ctx: SyncTaskContext) -> Mapping[str, Any] | None:
        """Sync implementation, run in a worker thread; see :meth:`execute`."""
        raise NotImplementedError

    def reads_parameters(self) -> Collection[str] | None:
        """The names of the parameters this step may read, or ``None`` when it cannot tell
        (the default: any). Tools use it to spot a misspelt parameter (``runstream run
        --param nme=Ada`` warns when no step reads ``nme``), so a task type that overrides it
        must list every parameter it could read; when unsure, return ``None``."""
        return None


def _not_a_dict(step: str, data: object) -> TaskError:
    preview = repr(data)
    if len(preview) > 80:
        preview = preview[:77] + "..."
    return TaskError(
        f"step '{step}' emitted a {type(data).__name__} ({preview}); "
        "events must be dicts, e.g. {'type': 'chunk', 'text': ...}"
    )


class StepScope(Protocol):
    """What a :class:`TaskContext` needs of the run it belongs to: the engine's frame of the
    step (its run, and the parameter scope of the branch it runs in) provides it."""

    @property
    def run_id(self) -> str: ...

    @property
    def pipeline(self) -> str: ...

    @property
    def parameters(self) -> dict[str, Any]: ...

    def publish_step_event(self, step: str, data: dict[str, Any]
                           ) -> Awaitable[None] | None: ...

    @property
    def task_threads(self) -> TaskThreads:
        """The runtime's threads for sync tasks."""

    @property
    def cancel_grace_period(self) -> float: ...

    async def warn(self, message: str) -> None:
        """Report a problem of the run that does not fail it (its warnings, ``run.warning``)."""


class TaskContext:
    """What a running step can see and do: its parameters, and emitting events.

    One is made per step run. It is bound to its run: parameters and events of other runs in the
    same process are never visible through it.
    """

    __slots__ = ("_run", "step")

    def __init__(self, scope: StepScope, step: str) -> None:
        self._run = scope
        #: The step's dotted path in the pipeline, e.g. ``llm`` or ``fanout.a.llm``.
        self.step = step

    @property
    def run_id(self) -> str:
        return self._run.run_id

    @property
    def pipeline(self) -> str:
        return self._run.pipeline

    @property
    def parameters(self) -> Mapping[str, Any]:
        """The run's parameters as this step sees them (read-only)."""
        return MappingProxyType(self._run.parameters)

    def parameter(self, name: str) -> Any:
        """One parameter; a missing one raises :class:`ParameterError` naming it."""
        try:
            return self._run.parameters[name]
        except KeyError:
            raise self._missing(name) from None

    def _missing(self, name: str) -> ParameterError:
        known = ", ".join(sorted(self._run.parameters)) or "none"
        return ParameterError(
            f"step '{self.step}' needs parameter '{name}', which is not set; pass it with "
            f"parameters={{'{name}': ...}}, RUNSTREAM_PRM_{name} (read when the run asks: "
            f"environment=['{name}'] or the config's parameters.environment), a parameters "
            f"file, or a 'returns' of an earlier step (parameters set: {known})"
        )

    def arguments_for(self, function: Callable[..., Any]) -> dict[str, Any]:
        """Keyword arguments for ``function``, taken from the parameters by argument name.

        Arguments with defaults are optional; ``**kwargs`` receives every parameter.
        """
        params = self._run.parameters
        kwargs: dict[str, Any] = {}
        for name, kind, required in _argument_plan(function):
            if kind == _BY_NAME:
                if name in params:
                    kwargs[name] = params[name]
                elif required:
                    raise self._missing(name)
            elif kind == _ALL:
                for key, value in params.items():
                    kwargs.setdefault(key, value)
            elif name in params:  # positional-only
                raise TaskError(
                    f"step '{self.step}': argument '{name}' of {function.__qualname__} is "
                    "positional-only; parameters are passed by name"
                )
            elif required:
                raise self._missing(name)
        return kwargs

    async def emit(self, data: dict[str, Any]) -> None:
        """Emit one event; ``data`` is delivered verbatim as a ``step.event``.

        Waits only when a consumer is behind (backpressure), so a fast producer stays fast.
        """
        if data.__class__ is not dict and not isinstance(data, dict):
            raise _not_a_dict(self.step, data)
        waiter = self._run.publish_step_event(self.step, data)
        if waiter is not None:
            await waiter

    def emit_nowait(self, data: dict[str, Any]) -> Awaitable[None] | None:
        """Emit one event without suspending: the form of :meth:`emit` for tight loops.

        Returns None, or, when a consumer is behind, an awaitable that must be awaited before
        the next event (that wait is the backpressure; skipping it loses events)::

            waiter = ctx.emit_nowait(event)
            if waiter is not None:
                await waiter

        It saves a coroutine per event, about a fifth of runstream's cost per event.
        """
        if data.__class__ is not dict and not isinstance(data, dict):
            raise _not_a_dict(self.step, data)
        waiter: Awaitable[None] | None = self._run.publish_step_event(self.step, data)
        return waiter

    async def run_sync(self, function: Callable[[SyncTaskContext], R]) -> R:
        """Run ``function(sync_ctx)`` in a worker thread and wait for it.

        If this step is cancelled, the thread is told (``sync_ctx.cancelled``) and whatever it
        emits afterwards is dropped: it cannot be interrupted, but it cannot reach a closed stream.
        """
        loop = asyncio.get_running_loop()
        sync_ctx = SyncTaskContext(self, loop)
        ctx = contextvars.copy_context()
        # The runtime's own threads, not the loop's default executor: steps stuck in cancelled
        # runs must not starve other users of asyncio.to_thread (see runstream._threads).
        threads = self._run.task_threads
        job, waits = threads.submit(self.run_id, self.step, ctx.run, function, sync_ctx)
        try:
            if waits:
                await self._report_thread_wait(threads.size, threads.stuck)
            return await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            sync_ctx._cancel()
            threads.cancelled(job, loop, self._run.cancel_grace_period)
            raise

    async def _report_thread_wait(self, size: int, stuck: int) -> None:
        message = (f"step '{self.step}' waits for a task thread: all {size} "
                   f"(limits.task_threads) are busy, {stuck} of them held by cancelled or "
                   "timed-out steps that have not returned")
        logger.warning("run %s: %s", self.run_id, message)
        await self._run.warn(message)


class SyncTaskContext:
    """The :class:`TaskContext` as seen from a worker thread: same data, blocking ``emit``."""

    __slots__ = ("_async", "_cancelled", "_loop")

    def __init__(self, async_ctx: TaskContext, loop: asyncio.AbstractEventLoop) -> None:
        self._async = async_ctx
        self._loop = loop
        self._cancelled = threading.Event()

    @property
    def step(self) -> str:
        return self._async.step

    @property
    def run_id(self) -> str:
        return self._async.run_id

    @property
    def parameters(self) -> Mapping[str, Any]:
        return self._async.parameters

    def parameter(self, name: str) -> Any:
        return self._async.parameter(name)

    def arguments_for(self, function: Callable[..., Any]) -> dict[str, Any]:
        return self._async.arguments_for(function)

    @property
    def cancelled(self) -> bool:
        """True once the step was cancelled; a long sync task should check it and return."""
        return self._cancelled.is_set()

    def _cancel(self) -> None:
        self._cancelled.set()

    def emit(self, data: dict[str, Any]) -> None:
        """Emit one event from the worker thread; blocks while the consumer is behind.

        After the step was cancelled, events are dropped.
        """
        if not isinstance(data, dict):
            raise _not_a_dict(self.step, data)
        if self._cancelled.is_set():
            return
        future = asyncio.run_coroutine_threadsafe(self._async.emit(data), self._loop)
        while True:
            try:
                future.result(timeout=0.1)
                return
            except TimeoutError:
                if self._cancelled.is_set():
                    future.cancel()
                    return
            except (asyncio.CancelledError, RuntimeError):
                return  # the loop or the run went away: the event has nowhere to go


_BY_NAME, _ALL, _POSITIONAL_ONLY = 0, 1, 2
_Plan = tuple[tuple[str, int, bool], ...]


def _plan(function: Callable[..., Any]) -> _Plan:
    plan = []
    for p in inspect.signature(function).parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            continue
        kind = (_ALL if p.kind is p.VAR_KEYWORD
                else _POSITIONAL_ONLY if p.kind is p.POSITIONAL_ONLY else _BY_NAME)
        plan.append((p.name, kind, p.default is p.empty and kind != _ALL))
    return tuple(plan)


_cached_plan = functools.lru_cache(maxsize=4096)(_plan)


def _argument_plan(function: Callable[..., Any]) -> _Plan:
    # inspect.signature costs ~10 us and task functions are long-lived: plan once per function.
    try:
        return _cached_plan(function)
    except TypeError:  # unhashable callable
        return _plan(function)
