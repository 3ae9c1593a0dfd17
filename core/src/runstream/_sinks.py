"""Event sinks: the base class plugins subclass, and the per-run runner that feeds each sink."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ._errors import public_error_message
from ._hotpath import fast_private_attributes

if TYPE_CHECKING:
    from ._events import Event
    from ._runlog import RunLog

__all__ = ["Sink"]

logger = logging.getLogger("runstream.sinks")


class Sink(BaseModel):
    """Base class of event sinks.

    A sink's fields are its options in the config file (``sinks: [{type: name, ...fields}]``).
    Each run gets its own copy of the configured sink, so a sink may keep per-run state in
    ``self``. runstream calls ``open(run_log)`` once, ``send(event)`` for every event of the run
    in order, and ``close(run_log, status)`` once at the end. Events reach the sink through a
    bounded queue of ``queue_size``; if the queue stays full for ``send_timeout`` seconds, or any
    of these methods raises, the sink is reported (in the run log's warnings and the
    ``runstream.sinks`` logger) and dropped for that run, and the run goes on.
    """

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # A subclass's private attributes (``_x = PrivateAttr()``), read without pydantic's
        # __getattr__ (see _hotpath).
        fast_private_attributes(cls)

    model_config = ConfigDict(extra="forbid", defer_build=True, allow_inf_nan=False)

    queue_size: int = Field(default=1000, ge=1, description="Events buffered for this sink.")
    send_timeout: float = Field(
        default=5.0, gt=0,
        description="Seconds the run waits for room in a full queue before dropping the sink.",
    )

    def for_run(self) -> Sink:
        """The instance that serves one run: by default a deep copy of the configured sink, so
        per-run state never leaks between runs. Override to share something on purpose (a
        connection pool, a collector in tests)."""
        return self.model_copy(deep=True)

    async def open(self, run: RunLog) -> None:
        """Called once before the run's first event."""

    async def send(self, event: Event) -> None:
        """Called for every event of the run, in order."""
        raise NotImplementedError

    async def close(self, run: RunLog, status: str) -> None:
        """Called once after the run's terminal event; ``status`` is the run's final status."""


_CLOSE = object()


class SinkRunner:
    """Feeds one sink for one run from its own bounded queue, in its own asyncio task."""

    def __init__(self, sink: Sink, label: str, run_log: RunLog) -> None:
        self.sink = sink
        self.label = label
        self.run_log = run_log
        self.failed = False
        self.status = "running"
        self._queue: asyncio.Queue[object] = asyncio.Queue(sink.queue_size)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._consume(), name=f"runstream-sink-{self.label}")

    def _fail(self, error: BaseException | str) -> None:
        if self.failed:
            return
        self.failed = True
        # The run log (which clients may read) gets the error's type; its message, which may
        # name server paths, goes to the server log only.
        reason = (error if isinstance(error, str)
                  else f"{type(error).__name__}: {public_error_message(error)}")
        detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        prefix = f"sink {self.label} failed and was dropped for this run"
        self.run_log.warnings.append(f"{prefix}: {reason}")
        logger.warning("run %s: %s: %s", self.run_log.run_id, prefix, detail)

    async def _consume(self) -> None:
        sink = self.sink
        queue = self._queue
        try:
            await sink.open(self.run_log)
            send = sink.send
            item = await queue.get()
            while item is not _CLOSE:
                await send(item)  # type: ignore[arg-type]
                try:  # take what is already queued without a round trip through the loop
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    item = await queue.get()
            await sink.close(self.run_log, self.status)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    def offer(self, event: Event) -> bool:
        """Queue ``event`` if there is room (or the sink was dropped); False when full."""
        if self.failed:
            return True
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    async def put(self, event: Event | object) -> None:
        if self.failed:
            return
        try:
            self._queue.put_nowait(event)
            return
        except asyncio.QueueFull:
            pass
        try:
            async with asyncio.timeout(self.sink.send_timeout):
                await self._queue.put(event)
        except TimeoutError:
            self._fail(f"its queue of {self.sink.queue_size} events stayed full for "
                       f"{self.sink.send_timeout} s")
            self._stop()

    def _stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def finish(self, status: str) -> None:
        """Queue the end of the run and wait (bounded by ``send_timeout``) for the sink."""
        self.status = status
        task = self._task
        if task is None:
            return
        await self.put(_CLOSE)
        if self.failed:
            self._stop()
        done, _ = await asyncio.wait({task}, timeout=self.sink.send_timeout)
        if not done:
            self._fail(f"it did not finish within {self.sink.send_timeout} s of the run's end")
            task.cancel()
            # Bounded too: a sink that ignores its cancellation is left behind, not waited for.
            await asyncio.wait({task}, timeout=self.sink.send_timeout)
