"""A run started for an HTTP client: its events are framed into a :class:`RunBuffer`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from runstream import RunHandle

from ._buffer import RunBuffer
from ._wire import failure_data, frame_record

if TYPE_CHECKING:
    from ._inflight import RunsInFlight


class LiveRun:
    """Owns a :class:`runstream.RunHandle` and pumps its events into ``buffer``.

    The pump is its own task, so the buffer fills (and a reconnecting client can replay) whether
    or not a client is reading; readers wait on the buffer, and everything queued while a reader
    was busy goes out in its next write. ``cancel()`` stops the run explicitly: nothing here
    relies on a generator's ``finally``.
    """

    __slots__ = ("buffer", "cancel_reason", "handle", "runs", "task")

    def __init__(self, handle: RunHandle, buffer: RunBuffer,
                 runs: RunsInFlight | None = None) -> None:
        self.handle = handle
        self.buffer = buffer
        self.cancel_reason = "cancelled"
        #: Where the run counts as in flight until its terminal event is out.
        self.runs = runs
        if runs is not None:
            runs._add_run(self)
        buffer.live = self
        self.task = asyncio.get_running_loop().create_task(
            self._pump(), name=f"runstream-sse-pump-{handle.run_id}")

    async def _pump(self) -> None:
        buffer = self.buffer
        publish = buffer.publish
        run_id = self.handle.run_id
        # The run's records a batch at a time (RunHandle iterates them so, see _pipeline.py):
        # no Event envelope and no async-generator hop per event.
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
                buffer.publish_terminal("run.failed", failure_data(exc))
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
        # reaches us then: say how it ended here, after everything the client was sent.
        buffer = self.buffer
        log = self.handle.run_log
        if log.status == "completed":
            buffer.publish_terminal("run.completed", {"status": "completed"})
        elif log.status == "failed" and log.error is not None:
            buffer.publish_terminal("run.failed", {
                "error_type": log.error.type, "message": log.error.message,
                "step": log.error.step})
        else:
            buffer.publish_terminal("run.cancelled", {"reason": self.cancel_reason})

    def _release(self) -> None:
        runs = self.runs
        if runs is not None:
            self.runs = None
            runs._discard_run(self)

    def abandon(self, reason: str) -> None:
        """End the run for its clients now (``run.cancelled`` with ``reason``) even though it
        has not stopped yet: for a shutdown whose grace period is over."""
        if self.task.done():
            return
        buffer = self.buffer
        if buffer.terminal is None:
            buffer.publish_terminal("run.cancelled", {"reason": reason})
        self._release()
        buffer.end()

    async def cancel(self, reason: str = "cancelled") -> None:
        """Cancel the run and wait until it and the pump have ended."""
        self.cancel_reason = reason
        await self.handle.cancel(reason)
        await asyncio.wait({self.task})
