"""The ``memory`` event log's state: a run's kept records (each with its size) and the readers
waiting for more; the log's runs, signals and slots."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ._eventlog import CancelHandler, LoggedRun
from ._packed import pack, unpack
from ._size import Unmeasured, estimate, json_size

if TYPE_CHECKING:
    from ._events import EventRecord

__all__: list[str] = []

#: What a kept record costs besides its JSON: the tuple, its place in the deque, its size.
RECORD_OVERHEAD: Final = 120
#: The records (and sizes) of a packed run: nothing is appended to an ended run.
_NONE: Final[deque[Any]] = deque(maxlen=0)


def record_size(record: EventRecord) -> int:
    """The bytes ``record`` holds in a log: its data's JSON size (the cheap estimate, exact
    where the estimate cannot bound it) plus :data:`RECORD_OVERHEAD`."""
    data = record[4]
    try:
        return estimate(data) + RECORD_OVERHEAD
    except (Unmeasured, TypeError):
        return json_size(data) + RECORD_OVERHEAD


class _Run:
    """One run's records (each with its size) and the readers waiting for more."""

    __slots__ = (
        "ended_at",
        "hold",
        "last_seq",
        "meta",
        "nbytes",
        "owner",
        "packed",
        "pipeline",
        "readers",
        "records",
        "repack",
        "run_id",
        "sizes",
        "status",
        "waiters",
    )

    def __init__(self, run_id: str, pipeline: str, owner: str | None, max_events: int,
                 meta: Mapping[str, Any] | None = None,
                 repack: dict[str, float] | None = None) -> None:
        self.run_id = run_id
        self.pipeline = pipeline
        self.owner = owner
        self.meta: Mapping[str, Any] = dict(meta) if meta else {}
        self.status = "running"
        self.records: deque[EventRecord] = deque(maxlen=max_events)
        self.sizes: deque[int] = deque(maxlen=max_events)
        self.nbytes = 0
        self.last_seq = 0
        self.readers = 0
        self.waiters: list[asyncio.Future[None]] | None = None  # None: no list per run kept
        self.ended_at: float | None = None
        #: The cursor of a reader that must miss nothing (see :meth:`MemoryEventLog.hold`).
        self.hold: int | None = None
        #: The records and their sizes once packed (see :meth:`pack`), the seq of the first
        #: and ``max_events``.
        self.packed: tuple[bytes, int, int | None] | None = None
        #: Where an unpacked run goes to be packed again (``_State.unpacked``).
        self.repack = repack

    def pack(self) -> None:
        """Keep the records of this ended run as one ``bytes`` (``_packed``), if they can be."""
        records = self.records
        packed = pack(records, self.sizes) if records else None
        if packed is not None:
            self.packed = (packed, records[0][0], records.maxlen)
            self.records, self.sizes = _NONE, _NONE

    def unpack(self) -> None:
        """The records as they were before :meth:`pack` (a reader wants them): a replay that
        reads them in many writes unpacks them once; they are packed again later."""
        packed, self.packed = self.packed, None
        if packed is not None:
            records, sizes = unpack(packed[0])
            self.records = deque(records, maxlen=packed[2])
            self.sizes = deque(sizes, maxlen=packed[2])
            if self.repack is not None:
                self.repack[self.run_id] = time.monotonic()

    def since(self, cursor: int) -> list[EventRecord]:
        if self.packed is not None:
            self.unpack()
        records = self.records
        if self.last_seq <= cursor or not records:
            return []
        first = records[0][0]
        if cursor < first:
            return list(records)
        start = cursor - first + 1  # seqs are contiguous
        n = len(records)
        if n - start < start:
            return [records[i] for i in range(start, n)]
        return list(records)[start:]

    def waiter(self) -> asyncio.Future[None]:
        """A future that the next append (or the end) completes. Its reader may complete it
        itself (e.g. to send a ping) or cancel it; no task and no timer per wait."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.ended_at is not None:
            waiter.set_result(None)
            return waiter
        waiters = self.waiters
        if waiters:  # drop the futures of readers that left or were woken by something else
            waiters[:] = [w for w in waiters if not w.done()]
            waiters.append(waiter)
        else:
            self.waiters = [waiter]
        return waiter

    def wake(self, but: asyncio.Future[None] | None = None) -> None:
        """Complete the waiting readers' futures; ``but`` (if waiting) stays waiting."""
        waiters = self.waiters
        if waiters:
            if len(waiters) == 1 and waiters[0] is but:
                return  # only the reader told some other way waits (a token's common case)
            self.waiters = None if but is None or but not in waiters else [but]
            for waiter in waiters:
                if waiter is not but and not waiter.done():
                    waiter.set_result(None)

    def info(self) -> LoggedRun:
        if self.packed is not None:
            first = self.packed[1]
        else:
            first = self.records[0][0] if self.records else self.last_seq + 1
        return LoggedRun(self.run_id, self.pipeline, self.owner, self.status, self.last_seq,
                         first, self.meta)


class _State:
    """A :class:`MemoryEventLog`'s runs, signals and slots (see ``MemoryEventLog._s``)."""

    __slots__ = ("ended", "handlers", "held", "runs", "slots", "timer", "timer_loop", "unpacked")

    def __init__(self) -> None:
        self.runs: dict[str, _Run] = {}
        self.ended: dict[str, float] = {}  # run id -> end, in end order
        self.unpacked: dict[str, float] = {}  # the ended runs not packed yet, as ``ended``
        self.held = 0
        self.handlers: list[CancelHandler] = []
        self.slots: set[str] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_loop: asyncio.AbstractEventLoop | None = None
