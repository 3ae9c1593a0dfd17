"""The ``sse`` sink: appends runs started anywhere to the runtime's event log."""

from __future__ import annotations

from pydantic import PrivateAttr
from runstream import Event, EventLog, MemoryEventLog, RunIdError, RunLog, RunstreamError, Sink

__all__ = ["SSESink"]


class SSESink(Sink):
    """Sink ``sse``: makes every run of the runtime followable at ``/runs/{run_id}/events``.

    Configure it with ``sinks: [{type: sse}]``. It appends each run's events to the runtime's
    event log (``event_log:`` in the config), which the runtime hands it when it is built: with
    a shared log (``redis``), runs started by any process (the CLI, a worker) can be followed
    and cancelled from the web servers that share it. Runs that :func:`sse_response` streams
    are logged by it, once; the sink leaves them alone. Appending to a ``memory`` log never
    waits: a run's oldest events are dropped past the log's ``max_events``.
    """

    _log: EventLog | None = PrivateAttr(default=None)
    #: The log and the run being appended to (one private attribute read per event: each
    #: costs a pydantic ``__getattr__`` call).
    _target: tuple[EventLog, str] | None = PrivateAttr(default=None)

    def attach_event_log(self, log: EventLog) -> None:
        """Append the runs from now on to ``log``: done by :class:`runstream.Runtime` with its
        own event log when it is built."""
        self._log = log

    def for_run(self) -> SSESink:
        """A copy per run that shares the event log (a service, not per-run state)."""
        copy = self.model_copy()
        copy._log = self._log
        copy._target = None
        return copy

    async def open(self, run: RunLog) -> None:
        """Record the run in the event log (unless :func:`sse_response` logs it itself)."""
        log = self._log
        if log is None:
            raise RunstreamError(
                "the sse sink has no event log to append to: it gets the runtime's when the "
                "runtime is built (use it through a Runtime)")
        try:
            await log.create(run.run_id, pipeline=run.pipeline, owner=run.owner)
        except RunIdError:
            return  # sse_response streams it and logs it itself
        self._target = (log, run.run_id)

    async def send(self, event: Event) -> None:
        """Append one event; never waits with a ``memory`` log."""
        target = self._target
        if target is None:
            return
        log, run_id = target
        record = (event.seq, event.ts, event.type, event.step, event.data)
        if isinstance(log, MemoryEventLog):
            log.append_now(run_id, [record])
        else:
            await log.append(run_id, [record])

    async def close(self, run: RunLog, status: str) -> None:
        """End the run in the log: replays of it end, and its ``ttl`` starts."""
        target = self._target
        if target is not None:
            await target[0].end(target[1], status)
