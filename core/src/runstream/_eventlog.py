"""The event log interface: where a run's events live once they are emitted.

Whoever drives a run that clients follow (runstream-sse's live runs, the ``sse`` sink) appends
its records here, and every reader (an HTTP stream, a replay after a reconnect, the runs router)
reads them back from here, in whichever process it runs. The default, ``memory``, holds them in
this process; a shared one (``redis``, from runstream-redis) lets any process that shares it
replay, follow and cancel a run that another process drives, and enforce one
``limits.max_concurrent_runs`` for all of them.

A run's records are the :data:`runstream.EventRecord` tuples ``(seq, ts, type, step, data)`` its
:class:`runstream.RunHandle` hands over, ``seq`` counting from 1 without holes. A run ends with
one terminal record (``run.completed``, ``run.failed`` or ``run.cancelled``): a reader that sees
it has read the whole run.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ._hotpath import fast_private_attributes

if TYPE_CHECKING:
    from ._events import EventRecord

__all__ = ["CancelHandler", "EventLog", "LoggedRun"]

#: Called with ``(run_id, reason)`` when a cancel signal for a run arrives (see
#: :meth:`EventLog.subscribe_cancel`). Called in the event loop; must not block.
CancelHandler = Callable[[str, str], object]


@dataclasses.dataclass(frozen=True, slots=True)
class LoggedRun:
    """What an event log knows of a run besides its records (for routers and readers)."""

    run_id: str
    #: The pipeline's name.
    pipeline: str
    #: The run's owner (``owner=``), or None for a run without one.
    owner: str | None
    #: ``running``, or how it ended: ``completed``, ``failed`` or ``cancelled``.
    status: str
    #: The seq of the last record appended (0: none yet).
    last_seq: int
    #: The seq of the oldest record still kept (``last_seq + 1`` when none is).
    first_seq: int
    #: What the run's creator stored with it (``create(..., meta=...)``; ``{}``: nothing),
    #: e.g. the options a protocol adapter needs to resume the run's stream elsewhere.
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.status != "running"


class EventLog(BaseModel):
    """Base class of event logs. Fields are the options of ``event_log:`` in the config.

    One instance serves every run of a :class:`runstream.Runtime`, concurrently, and belongs to
    one event loop (the application's). Implementations keep, per run, at most ``max_events``
    records and ``max_run_bytes`` of them (the oldest go first; the newest record is always
    kept), and forget a run ``ttl`` seconds after it ended.
    """

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # A subclass's private attributes (``_x = PrivateAttr()``), read without pydantic's
        # __getattr__ (see _hotpath).
        fast_private_attributes(cls)

    model_config = ConfigDict(extra="forbid", defer_build=True, allow_inf_nan=False)

    #: Whether other processes see this log (replay, cancel and limits across processes).
    shared: ClassVar[bool] = False

    ttl: float = Field(default=300.0, ge=0, le=30 * 86_400,
                       description="Seconds a run's events are kept after it ended.")
    max_events: int = Field(default=10_000, ge=1,
                            description="Events kept per run; past it the oldest are dropped.")
    max_run_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1,
        description="Bytes of events (their JSON) kept per run; past it the oldest are dropped "
                    "(the newest event is always kept).")

    async def start(self) -> None:
        """Connect (or check the connection): raise :class:`runstream.EventLogError` naming the
        server (password hidden) if it cannot be reached. Called by ``async with Runtime()``;
        the other methods start the log themselves on first use."""

    async def create(self, run_id: str, *, pipeline: str, owner: str | None,
                     meta: Mapping[str, Any] | None = None) -> None:
        """Record a new run (status ``running``, no records); :class:`runstream.RunIdError` if
        the log already has a run with this id. ``meta``: a small JSON object kept with the
        run and handed back as :attr:`LoggedRun.meta` (to every process sharing the log)."""
        raise NotImplementedError

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
        """Append a batch of the run's records, in ``seq`` order, after those appended before.
        The terminal record ends the run for readers; call :meth:`end` after it."""
        raise NotImplementedError

    def append_soon(self, run_id: str, records: Sequence[EventRecord],
                    done: Callable[[BaseException | None], object]) -> None:
        """:meth:`append` without waiting for it, for a writer that keeps one append of a run
        in flight at a time: ``done(None)`` once the records are in, ``done(error)`` with what
        :meth:`append` raised if not; never before this returns. Call it from the event loop.
        The default runs :meth:`append` in a task; a log that batches its writes may queue
        them with no task of their own (``redis`` does)."""
        task = asyncio.get_running_loop().create_task(self.append(run_id, records))
        task.add_done_callback(lambda t: done(
            asyncio.CancelledError() if t.cancelled() else t.exception()))

    async def end(self, run_id: str, status: str) -> None:
        """The run has ended with ``status`` (after its terminal record, or without one if it
        could not report it): its records expire ``ttl`` seconds from now, its readers that
        wait for more are told it ended."""
        raise NotImplementedError

    def read(self, run_id: str, after: int = 0, *, follow: bool = True
             ) -> AsyncIterator[list[EventRecord]]:
        """The run's records after seq ``after``, a batch at a time, oldest first; with
        ``follow``, then the new ones as they are appended, until the run has ended.

        Records the log no longer keeps are skipped: a reader tells a gap from the first seq it
        gets. Raises :class:`runstream.RunNotFoundError` for a run the log does not have, and
        :class:`runstream.EventLogError` if the log cannot be read (at once, or mid-way)."""
        raise NotImplementedError

    async def get_run(self, run_id: str) -> LoggedRun | None:
        """What the log knows of the run, or None if it has no such run (or forgot it)."""
        raise NotImplementedError

    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Send a cancel signal for a running run to whichever process subscribed for it
        (:meth:`subscribe_cancel`). Returns False if the log has no such run, or it has ended."""
        raise NotImplementedError

    def subscribe_cancel(self, handler: CancelHandler) -> Callable[[], None]:
        """Call ``handler(run_id, reason)`` for every cancel signal this process hears (the
        handler ignores runs it does not drive). Returns a function that unsubscribes."""
        raise NotImplementedError

    async def acquire_slot(self, run_id: str, limit: int) -> bool:
        """Take one of ``limit`` run slots shared by every user of this log, for ``run_id``;
        False if all are taken. A slot is held until :meth:`release_slot`, or, in a shared log,
        until its process stops renewing it (killed): then it frees itself."""
        raise NotImplementedError

    async def release_slot(self, run_id: str) -> None:
        """Free ``run_id``'s slot (nothing if it holds none)."""
        raise NotImplementedError

    async def slots_in_use(self) -> int:
        """How many slots are held, by every user of the log."""
        raise NotImplementedError

    async def add_reader(self, run_id: str) -> None:
        """A client started reading the run (see :meth:`readers`)."""
        raise NotImplementedError

    async def remove_reader(self, run_id: str) -> None:
        """A client stopped reading the run."""
        raise NotImplementedError

    async def readers(self, run_id: str) -> int:
        """How many clients read the run now, in every process: the run of a client that went
        away is cancelled only if nobody reads it when its ``reconnect_grace`` is over."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections and tasks. The log is not used afterwards."""

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **self.model_dump()}
