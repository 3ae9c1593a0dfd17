"""``AsyncPythonTask`` and ``PythonTask``."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping, Sequence
from types import CodeType
from typing import Annotated, Any, cast

from pydantic import BeforeValidator, Field, PlainSerializer
from runstream import (
    ReturnsError,
    RunstreamError,
    SyncTaskContext,
    Task,
    TaskContext,
    TaskError,
    import_object as _import_object,
)


def _resolve(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return _import_object(value)
        except RunstreamError as exc:
            raise ValueError(str(exc)) from None
    if not callable(value):
        raise ValueError(f"function must be callable or a 'module:function' string, "
                         f"got {type(value).__name__}")
    return value


def _name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


FunctionField = Annotated[
    Callable[..., Any],
    BeforeValidator(_resolve),
    PlainSerializer(_name, return_type=str),
]


#: Names whose use in a function's code means it may read parameters other than its arguments.
_CONTEXT_NAMES = frozenset({"current_task_context", "parameters", "parameter", "arguments_for"})


def _codes(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _codes(const)


def arguments_read(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The parameters a task function reads: its argument names. ``None`` (cannot tell) when it
    takes ``**kwargs``, is not plain Python code, or its code names the task context
    (``current_task_context()``, ``.parameters``), through which it can read any."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if not isinstance(code, CodeType):
        return None
    if any(_CONTEXT_NAMES.intersection(c.co_names) for c in _codes(code)):
        return None
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind is not p.VAR_POSITIONAL)


def map_returns(step: str, returns: Sequence[str], value: Any) -> dict[str, Any] | None:
    """A function's return value -> output parameters.

    One name: the value itself. Several: a tuple/list of that many values (in order), or a
    mapping that holds every name.
    """
    if not returns:
        return None
    if len(returns) == 1:
        return {returns[0]: value}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, list)) and len(value) == len(returns):
        return dict(zip(returns, value, strict=True))
    raise ReturnsError(
        f"step '{step}' declares {len(returns)} returns {list(returns)}; its function must "
        f"return a tuple of {len(returns)} values or a dict with those keys, "
        f"got {type(value).__name__}"
    )


def _done_returns(step: str, returns: Sequence[str], done: dict[str, Any] | None,
                  done_type: str) -> dict[str, Any] | None:
    if not returns:
        return None
    if done is None:
        raise ReturnsError(
            f"step '{step}' declares returns {list(returns)} but its generator never yielded "
            f"a {{'type': '{done_type}', ...}} dict to read them from"
        )
    return done


class AsyncPythonTask(Task):
    """Runs an async function or async generator function.

    - coroutine function: awaited; its return value gives ``returns`` (see ``map_returns``).
    - async generator function: each yielded dict is emitted as a ``step.event`` as it is
      yielded; ``returns`` are read from the last yielded dict whose ``type`` equals
      ``done_type`` (default ``"done"``). Yielding anything but a dict fails the step.

    Arguments are filled from the run's parameters by name.
    """

    function: FunctionField = Field(description="The function, or 'module:function'.")
    done_type: str = Field(default="done",
                           description="`type` of the yielded dict that carries the returns.")

    def reads_parameters(self) -> frozenset[str] | None:
        """The function's argument names (None if it takes ``**kwargs`` or uses the context)."""
        return arguments_read(self.function)

    async def execute(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        fn = self.function
        result = fn(**ctx.arguments_for(fn))
        if inspect.isasyncgen(result):
            # The per-event hot path: no coroutine per event (emit_nowait), and no look for the
            # done dict when there are no returns to read from it.
            done_type = self.done_type
            track = bool(self.returns)
            emit = ctx.emit_nowait
            done: dict[str, Any] | None = None
            try:
                async for item in cast("AsyncGenerator[dict[str, Any], None]", result):
                    waiter = emit(item)
                    if waiter is not None:
                        await waiter
                    if track and item.get("type") == done_type:
                        done = item
            finally:
                await result.aclose()
            return _done_returns(ctx.step, self.returns, done, done_type)
        if inspect.isawaitable(result):
            return map_returns(ctx.step, self.returns, await result)
        if inspect.isgenerator(result):
            result.close()
        raise TaskError(
            f"step '{ctx.step}': {_name(fn)} is not async (it returned a "
            f"{type(result).__name__}); use PythonTask (type: python) for sync functions"
        )


class PythonTask(Task):
    """Runs a sync function or sync generator function in a worker thread.

    A generator's yielded dicts are emitted as ``step.event`` (blocking while the consumer is
    behind); returns work as for :class:`AsyncPythonTask`. If the step is cancelled, the
    generator is closed at its next yield and nothing more is delivered.
    """

    function: FunctionField = Field(description="The function, or 'module:function'.")
    done_type: str = Field(default="done",
                           description="`type` of the yielded dict that carries the returns.")

    def reads_parameters(self) -> frozenset[str] | None:
        """The function's argument names (None if it takes ``**kwargs`` or uses the context)."""
        return arguments_read(self.function)

    def run(self, ctx: SyncTaskContext) -> Mapping[str, Any] | None:
        fn = self.function
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            raise TaskError(f"step '{ctx.step}': {_name(fn)} is async; use AsyncPythonTask "
                            "(type: async-python)")
        result = fn(**ctx.arguments_for(fn))
        if not inspect.isgenerator(result):
            return map_returns(ctx.step, self.returns, result)
        done: dict[str, Any] | None = None
        try:
            for item in cast("Generator[dict[str, Any], None, None]", result):
                if ctx.cancelled:
                    break
                ctx.emit(item)
                if item.get("type") == self.done_type:
                    done = item
        finally:
            result.close()
        return _done_returns(ctx.step, self.returns, done, self.done_type)
