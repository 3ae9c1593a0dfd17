"""The ``sse`` sink: publishes runs started anywhere into the runtime's replay buffer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import PrivateAttr
from runstream import Event, RunLog, RunstreamError, Sink

from ._replay import ReplayBuffer
from ._wire import frame_event

if TYPE_CHECKING:
    from ._buffer import RunBuffer

__all__ = ["SSESink"]


class SSESink(Sink):
    """Sink ``sse``: makes every run of the runtime followable at ``/runs/{run_id}/events``.

    Configure it with ``sinks: [{type: sse}]``. It publishes each run's events into the
    runtime's default :class:`ReplayBuffer` (``runtime.state.sse_replay``), which is made, and this
    sink attached to it, by the first :func:`runs_router`, :func:`sse_response`, :class:`SSE`
    or :meth:`ReplayBuffer.for_runtime` call with that runtime: build the app's SSE pieces
    before starting runs. Runs that :func:`sse_response` streams are published by it, once;
    the sink leaves them alone. Publishing never waits: a run's oldest events are dropped once
    it has more than ``max_events``.
    """

    _replay: ReplayBuffer | None = PrivateAttr(default=None)
    _buffer: RunBuffer | None = PrivateAttr(default=None)

    def attach_sse_replay(self, replay: object) -> None:
        """Publish the runs from now on into ``replay`` (a :class:`ReplayBuffer`): done by
        runstream-sse when ``replay`` becomes the runtime's default."""
        if not isinstance(replay, ReplayBuffer):
            raise TypeError(f"an sse sink publishes into a ReplayBuffer, not {replay!r}")
        self._replay = replay

    async def open(self, run: RunLog) -> None:
        """Start the run's buffer (unless :func:`sse_response` publishes the run itself)."""
        replay = self._replay
        if replay is None:
            raise RunstreamError(
                "the sse sink has no replay buffer to publish into: build runs_router(), "
                "sse_response(), SSE() or ReplayBuffer.for_runtime() with this runtime before "
                "starting runs")
        if run.run_id not in replay:  # else sse_response streams it and publishes it itself
            self._buffer = replay._open(run.run_id, run.owner)

    async def send(self, event: Event) -> None:
        """Publish one event; never waits."""
        buffer = self._buffer
        if buffer is not None:
            buffer.publish(event.seq, event.type, frame_event(event))

    async def close(self, run: RunLog, status: str) -> None:
        """End the run's buffer: replays of it end, and its ``ttl`` starts."""
        buffer = self._buffer
        if buffer is not None:
            buffer.end()

