"""Per-runtime state of runstream-sse: the one module that reads and writes it.

runstream-sse keeps one object per :class:`runstream.Runtime`, in its public ``runtime.state``
(never as an attribute of the runtime itself): ``runtime.state.sse_runs``, its
:class:`RunsInFlight` (:func:`state_object`). The events themselves live in the runtime's event
log (``runtime.event_log``).

It sits at the bottom of runstream-sse's layers and knows none of those classes: their modules
pass themselves in (``RunsInFlight.for_runtime``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final, TypeVar

from runstream import Config, Runtime

#: The name of runstream-sse's entry in ``runtime.state``.
RUNS_STATE: Final = "sse_runs"

ConfigArg = Runtime | Config | str | os.PathLike[str] | None

T = TypeVar("T")


def resolve_runtime(config: ConfigArg) -> Runtime:
    """A Runtime as is; else a new Runtime for the config (a Config, a path, or None for the
    default lookup), which the caller owns and closes."""
    if isinstance(config, Runtime):
        return config
    return Runtime(config)


def shared_runtime(config: ConfigArg, what: str) -> Runtime:
    """``config``, which must be the Runtime that a response and its runs router share (a
    runtime of their own would give each its own runs, event log and limits)."""
    if isinstance(config, Runtime):
        return config
    raise TypeError(
        f"{what} needs config=<a Runtime>, the one your sse responses and runs router share "
        f"(got {type(config).__name__}); build it once at start-up (runtime = Runtime(...)), or "
        "use SSE(config), which builds and closes one for you")


def state_object(runtime: Runtime, name: str, kind: type[T], make: Callable[[], T]) -> T:
    """``runtime.state.<name>`` if it is a ``kind``, else ``make()``, stored there."""
    state = runtime.state
    if name in state:
        current = getattr(state, name)
        if isinstance(current, kind):
            return current
    made = make()
    setattr(state, name, made)
    return made
