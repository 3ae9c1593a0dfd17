"""A run started for an HTTP client: its events are framed into a :class:`RunBuffer`.

A :class:`LiveRun` starts no task: :class:`RunsInFlight` creates it, runs its :meth:`pump` as a
task it owns, and cancels it.
"""

from __future__ import annotations

from collections.abc import Callable

from runstream import RunHandle

from ._buffer import RunBuffer
from ._wire import end_data, failure_data, frame_record


class LiveRun:
    """Owns a :class:`runstream.RunHandle` and pumps its events into ``buffer``.

    The pump runs as its own task (its owner's), so the buffer fills (and a reconnecting client
    can replay) whether or not a client is reading; readers wait on the buffer, and everything
    queued while a reader was busy goes out in its next write. The run is stopped explicitly:
    nothing here relies on a generator's ``finally``. ``on_release`` is called once, as soon as
    the run has ended for its clients (its terminal event is out).
    """

    __slots__ = ("buffer", "cancel_reason", "handle", "on_release")

    def __init__(self, handle: RunHandle, buffer: RunBuffer,
                 on_release: Callable[[LiveRun], None] | None = None) -> None:
        self.handle = handle
        self.buffer = buffer
        #: The reason the run is cancelled with if the pump stops it.
        self.cancel_reason = "cancelled"
        self.on_release = on_release

    async def pump(self) -> None:
        """Publish the run's events into the buffer until the run ends, then end the buffer."""
        buffer = self.buffer
        publish = buffer.publish
        run_id = self.handle.run_id
        # The run's records a batch at a time: no Event envelope and no async-generator hop
        # per event.
        events = self.handle.batches()
        try:
            async for batch in events:
                for seq, _ts, type_, step, data in batch:
                    room = publish(seq, type_, frame_record(run_id, seq, type_, step, data))
                    if buffer.terminal is not None:
                        # The run has ended for its clients (its record is saved before its
                        # terminal event): its slot is free before they can ask for another.
                        self._release()
                    if room is not None:
                        await room
        except Exception as exc:
            if self.handle.done():  # the run could not start (e.g. its run id is taken)
                buffer.publish_terminal("run.failed",
                                        end_data(failure_data(exc), self.handle.run_log))
            else:  # an event could not be encoded: the run is cancelled below, with this reason
                self.cancel_reason = f"the event stream failed: {type(exc).__name__}: {exc}"
        finally:
            # Stop the run explicitly (this task may have been cancelled while it waited for
            # room), then close the iterator so that its own clean-up runs now, not at GC.
            if not self.handle.done():
                await self.handle.cancel(self.cancel_reason)
            await events.aclose()
            if buffer.terminal is None:
                self._publish_end()
            self._release()
            buffer.end()

    def _publish_end(self) -> None:
        # RunHandle.cancel() detaches the consumer, so the run's own terminal event never
        # reaches us then: say how it ended here, after everything the client was sent, with
        # the fields of the run's own terminal event.
        buffer = self.buffer
        log = self.handle.run_log
        if log.status == "completed":
            buffer.publish_terminal("run.completed", end_data({"status": "completed"}, log))
        elif log.status == "failed" and log.error is not None:
            buffer.publish_terminal("run.failed", end_data(log.error.event_data(), log))
        else:
            buffer.publish_terminal("run.cancelled",
                                    end_data({"reason": self.cancel_reason}, log))

    def _release(self) -> None:
        on_release = self.on_release
        if on_release is not None:
            self.on_release = None
            on_release(self)

    def abandon(self, reason: str) -> None:
        """End the run for its clients now (``run.cancelled`` with ``reason``) even though it
        has not stopped yet: for a shutdown whose grace period is over."""
        buffer = self.buffer
        if buffer.ended:
            return
        if buffer.terminal is None:
            buffer.publish_terminal("run.cancelled",
                                    end_data({"reason": reason}, self.handle.run_log))
        self._release()
        buffer.end()
