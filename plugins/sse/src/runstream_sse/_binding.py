"""Per-runtime state of runstream-sse: the one module that reads and writes it.

runstream-sse keeps two objects per :class:`runstream.Runtime`, in its public
``runtime.state`` (never as attributes of the runtime itself):

- ``runtime.state.sse_replay``: the runtime's default :class:`ReplayBuffer`, which the runtime's
  ``sse`` sinks publish into (:func:`default_replay`);
- ``runtime.state.sse_runs``: its :class:`RunsInFlight` (:func:`state_object`).

It sits at the bottom of runstream-sse's layers and knows none of those classes: their modules
pass themselves in (``ReplayBuffer.for_runtime``, ``RunsInFlight.for_runtime``), and a sink is
attached to a replay buffer through the :class:`ReplaySink` protocol.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final, Protocol, TypeVar, runtime_checkable

from runstream import Config, Runtime

#: The names of runstream-sse's entries in ``runtime.state``.
REPLAY_STATE: Final = "sse_replay"
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
    runtime of their own would give each its own runs, replay buffer and limits)."""
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


@runtime_checkable
class ReplaySink(Protocol):
    """A sink that publishes into a runtime's default replay buffer (the ``sse`` sink)."""

    def attach_sse_replay(self, replay: object) -> None:
        """Publish the runs from now on into ``replay``."""


def default_replay(runtime: Runtime, replay: T | None, kind: type[T], make: Callable[[], T]
                   ) -> T:
    """``replay``, or the runtime's default one. The first replay buffer used with a runtime
    becomes its default (``runtime.state.sse_replay``), and its ``sse`` sinks are attached to
    it then. One set in ``runtime.state`` by hand is the default as well; its sinks are
    attached the first time it is used here."""
    state = runtime.state
    current = getattr(state, REPLAY_STATE) if REPLAY_STATE in state else None
    if not isinstance(current, kind):
        current = replay if replay is not None else make()
        setattr(state, REPLAY_STATE, current)
        _attach_sinks(runtime, current)
    elif BOUND_STATE not in state or getattr(state, BOUND_STATE) is not current:
        _attach_sinks(runtime, current)  # set in runtime.state by the application
    return replay if replay is not None else current


#: Which replay buffer the runtime's sinks were attached to.
BOUND_STATE: Final = "sse_sinks_attached_to"


def _attach_sinks(runtime: Runtime, replay: object) -> None:
    for _label, sink in runtime.sinks:
        if isinstance(sink, ReplaySink):
            sink.attach_sse_replay(replay)
    setattr(runtime.state, BOUND_STATE, replay)
