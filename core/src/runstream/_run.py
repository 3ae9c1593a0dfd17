"""A run's state (:class:`Run`), how it publishes events, and the frames its steps run in.

A :class:`Frame` is passed down the call chain, from the driver to each step and into each
branch of a composite node: it names the run and the parameter scope the step reads and writes.
Nothing about a run lives in module globals or context variables: concurrent runs, and
concurrent branches of one run, never share a scope by accident.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._channel import Channel
from ._errors import TaskError, public_error_message
from ._events import Event, EventRecord
from ._runlog import ErrorInfo, RunLog
from ._secrets import RunSecrets
from ._sinks import SinkRunner
from ._size import FACTOR, Unmeasured, _str_len, estimate_value, json_size

if TYPE_CHECKING:
    from ._runtime import Runtime
    from ._threads import TaskThreads

logger = logging.getLogger("runstream")

#: What a run's own event (lifecycle, warning, its end) counts in its channel's byte bound.
_OWN_EVENT_BYTES = 256


class Frame:
    """Where a step runs: its :class:`Run` and the parameters it reads and writes.

    The top frame of a run holds the run's own parameters. A branch of a composite node gets a
    frame of its own (:meth:`branch`): a copy of its parent's parameters, plus what the branch
    sets, which is also kept in ``local`` (the branch's returns, what the node merges). A copy,
    not a ``ChainMap`` over the parent: the parent does not change while its node runs, and a
    plain dict keeps every parameter lookup of a branch's tasks at dict speed.

    It is also what a task's :class:`runstream.TaskContext` reads (``run_id``, ``pipeline``,
    ``parameters``, ``publish_step_event``).
    """

    __slots__ = ("local", "parameters", "publish_step_event", "run")

    def __init__(self, run: Run, parameters: dict[str, Any],
                 local: dict[str, Any] | None = None) -> None:
        self.run = run
        self.parameters = parameters
        #: What this branch set (None for the run's top frame).
        self.local = local
        #: The run's hot path, bound once: a task's emit reaches it in one call.
        self.publish_step_event: Callable[[str, dict[str, Any]], Awaitable[None] | None] = (
            run.publish_step_event)

    @property
    def run_id(self) -> str:
        return self.run.log.run_id

    @property
    def pipeline(self) -> str:
        return self.run.log.pipeline

    @property
    def task_threads(self) -> TaskThreads:
        return self.run.runtime.task_threads

    @property
    def cancel_grace_period(self) -> float:
        return self.run.runtime.config.limits.cancel_grace_period

    async def warn(self, message: str) -> None:
        self.run.log.warnings.append(message)
        await self.run.emit("run.warning", None, {"message": message})

    def branch(self, local: dict[str, Any] | None = None) -> Frame:
        """A frame for a branch run in this frame, seeded with ``local`` (a Map's item)."""
        local = {} if local is None else local
        scope = dict(self.parameters)
        scope.update(local)
        return Frame(self.run, scope, local)

    def set(self, values: dict[str, Any]) -> None:
        """Set parameters (a step's returns) in this frame's scope."""
        self.parameters.update(values)
        if self.local is not None:
            self.local.update(values)

    def recorded_inputs(self) -> dict[str, Any]:
        """The ``input_parameters`` to record for a step starting in this frame.

        Inside a branch, only what the branch set (a Map's item included): the rest is recorded
        once, on the enclosing node's attempt. Recording the whole view per step would store a
        Map's list once per item, which grows with the square of its length.
        """
        inputs = dict(self.parameters if self.local is None else self.local)
        secrets = self.run.secrets
        return secrets.mask(inputs) if secrets else inputs


class StepFailed(Exception):
    """Internal: a step failed; carries what ``step.failed`` / ``run.failed`` report."""

    def __init__(self, step: str, error: BaseException, redact: Callable[[str], str]) -> None:
        super().__init__(step)
        self.step = step
        self.error = error
        self.error_type = type(error).__name__
        self.message = redact(str(error) or repr(error))

    def info(self) -> ErrorInfo:
        return ErrorInfo(type=self.error_type, message=self.message, step=self.step)

    def event_data(self) -> dict[str, Any]:
        return self.info().event_data()


class Run:
    """The state of one run, owned by its driver task (see ``_drive``)."""

    __slots__ = ("announced", "cancel_reason", "channel", "claim_queued", "end_reports", "ended",
                 "finished", "id_given", "id_logged", "log", "max_event_bytes", "measure_from",
                 "owns_runtime", "parameters", "pending_create", "recorded", "runtime", "secrets",
                 "seq", "sink_runners", "started_at", "stopping", "terminal")

    def __init__(self, runtime: Runtime, log: RunLog, parameters: dict[str, Any],
                 channel: Channel[EventRecord] | None) -> None:
        self.runtime = runtime
        self.log = log
        #: The run's own parameters: the scope of its top frame.
        self.parameters = parameters
        self.channel = channel
        self.seq = 0
        #: Tuples, not lists, while empty (most runs have no sinks nor reports): an empty
        #: tuple is shared, a list per run is one more object for the garbage collector.
        self.sink_runners: tuple[SinkRunner, ...] = ()
        self.cancel_reason = "cancelled"
        self.started_at = time.perf_counter()
        self.recorded = False
        #: Set by stop_run when the run was ended from outside; finished once its end began
        #: (``terminal`` is then known); announced once the terminal event was published.
        self.ended = False
        self.finished = False
        self.announced = False
        #: Set while stop_run stops the run: a second stop waits for the first.
        self.stopping: asyncio.Future[None] | None = None
        #: Whether the caller chose the run id (else it is a fresh random one).
        self.id_given = False
        #: Its caller created it in the event log already (``runstream.logged_run_id``).
        self.id_logged = False
        #: Whether the run was submitted to a remote executor and recorded ``queued``: a
        #: worker claims that record (``save_if``) instead of creating one.
        self.claim_queued = False
        #: Whether the runtime was built for this run alone: the run closes it when it ends.
        self.owns_runtime = False
        self.terminal: tuple[str, dict[str, Any]] | None = None
        #: Reports to give just before the terminal event (the loop watchdog's, see _watchdog).
        self.end_reports: tuple[Callable[[], None], ...] = ()
        self.pending_create: asyncio.Future[None] | None = None
        limits = runtime.config.limits
        self.max_event_bytes = limits.max_event_bytes
        #: Estimates at or above this are measured exactly (see ``_size``).
        self.measure_from = (1 << 62 if limits.max_event_bytes is None
                             else -(-limits.max_event_bytes // FACTOR))
        if channel is not None:
            channel.limit_bytes(limits.max_queued_bytes)
        #: The run's secret parameters: masked in its record, redacted from its messages.
        self.secrets = RunSecrets()

    @property
    def run_id(self) -> str:
        return self.log.run_id

    def top_frame(self) -> Frame:
        return Frame(self, self.parameters)

    def redact(self, text: str) -> str:
        """``text`` without this run's secret values."""
        return self.secrets.redact(text) if self.secrets.texts else text

    # -- events ------------------------------------------------------------------------------
    def publish_step_event(self, step: str, data: dict[str, Any]) -> Awaitable[None] | None:
        """Hot path for ``step.event``: returns an awaitable only when someone is behind."""
        # Its size: ``_size.estimate(data)``, written out here because the call would be a
        # fifth of its cost (tests/test_size.py checks that they agree). It is within a factor
        # of the JSON size, so only events near the limit are serialised to be measured.
        size = 2
        try:
            # Keys, then a lookup: no items view per event (an object less to allocate).
            for key in data:
                value = data[key]
                cls = type(value)
                if cls is str:
                    size += _str_len(key) + len(value) + 7
                elif cls is int and -0x7FFFFFFFFFFFFFFF <= value <= 0x7FFFFFFFFFFFFFFF:
                    size += _str_len(key) + 8
                else:
                    size += _str_len(key) + 5 + estimate_value(value, 1)
        except (Unmeasured, TypeError):
            size = self._check_size(step, data)
        else:
            if size >= self.measure_from:  # near the limit, or over it: measure exactly
                size = self._check_size(step, data)
        seq = self.seq = self.seq + 1
        if self.sink_runners:
            return self._publish_to_sinks(seq, "step.event", step, data, size)
        channel = self.channel
        if channel is None:
            return None
        return channel.push((seq, time.time(), "step.event", step, data), size)

    def _publish_to_sinks(self, seq: int, type_: str, step: str | None,
                          data: dict[str, Any], size: int) -> Awaitable[None] | None:
        # Sinks with room take the event without a coroutine; only a full queue makes the
        # producer wait (bounded by the sink's send_timeout).
        record: EventRecord = (seq, time.time(), type_, step, data)
        event = Event.from_record(self.log.run_id, record)
        runners = self.sink_runners
        for i, runner in enumerate(runners):
            if not runner.offer(event):
                return self._publish_slow(runners[i:], event, record, size)
        channel = self.channel
        return None if channel is None else channel.push(record, size)

    def _check_size(self, step: str, data: dict[str, Any]) -> int:
        """The exact JSON size of an event; TaskError if it is over ``max_event_bytes``."""
        limit = self.max_event_bytes
        try:
            size = json_size(data)
        except (TypeError, ValueError, RecursionError) as exc:
            if limit is None:
                return 0  # no limit to enforce: only the channel's accounting misses it
            raise TaskError(
                f"step '{step}' emitted an event that cannot be written as JSON, so its size "
                f"cannot be checked against limits.max_event_bytes: {type(exc).__name__}: "
                f"{exc}") from None
        if limit is not None and size > limit:
            raise TaskError(
                f"step '{step}' emitted an event of {size} bytes, over the limit of {limit} "
                "(limits.max_event_bytes); send large payloads by reference (a URL or a file "
                "path) or split them into several events")
        return size

    def publish(self, type_: str, step: str | None, data: dict[str, Any]
                ) -> Awaitable[None] | None:
        """Publish one of runstream's own events (lifecycle, warnings, the end)."""
        self.seq += 1
        size = _OWN_EVENT_BYTES  # the run's own events: small and few, not walked
        if self.sink_runners:
            return self._publish_to_sinks(self.seq, type_, step, data, size)
        channel = self.channel
        if channel is not None:
            return channel.push((self.seq, time.time(), type_, step, data), size)
        return None

    async def _publish_slow(self, runners: Sequence[SinkRunner], event: Event,
                            record: EventRecord, size: int) -> None:
        for runner in runners:
            await runner.put(event)
        channel = self.channel
        if channel is not None:
            waiter = channel.push(record, size)
            if waiter is not None:
                await waiter

    async def emit(self, type_: str, step: str | None, data: dict[str, Any]) -> None:
        waiter = self.publish(type_, step, data)
        if waiter is not None:
            await waiter

    # -- hooks -------------------------------------------------------------------------------
    async def call_hook(self, name: str, **kwargs: Any) -> None:
        if not self.runtime.has_hook(name):
            return
        results = getattr(self.runtime.plugins.manager.hook, name)(**kwargs)
        for result in results:
            if inspect.isawaitable(result):
                await result

    async def call_hook_reporting(self, name: str, **kwargs: Any) -> None:
        """Call a hook whose errors must not change the outcome: report them instead."""
        try:
            await self.call_hook(name, **kwargs)
        except Exception as exc:
            # The run log (which clients may read) gets the error's type, the server log all.
            self.log.warnings.append(
                f"hook {name} raised {type(exc).__name__}: {public_error_message(exc)}")
            logger.warning("run %s: %s", self.run_id,
                           self.redact(f"hook {name} raised {type(exc).__name__}: {exc}"))
