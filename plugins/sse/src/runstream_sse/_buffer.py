"""The framed events of one run: bounded, followed by any number of readers in one event loop.

Plain data: a buffer knows nothing of the run that publishes into it (``_live``) nor of tasks.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable
from typing import Final

from runstream import TERMINAL_EVENT_TYPES

from ._encoder import json_frame
from ._wire import end_data, failure_data, is_default

#: One framed event: (seq, type, sent without lifecycle?, SSE text, its size in bytes, the
#: bytes published up to and including it: the size of a run of frames in one subtraction).
Frame = tuple[int, str, bool, str, int, int]

#: What a frame holds besides its text: the tuple, its seq and its place in the deque.
FRAME_OVERHEAD: Final = 120

#: No byte bound.
UNBOUNDED: Final = 1 << 62

_sizeof = sys.getsizeof


class ByteBudget:
    """Bytes held by several run buffers together (a :class:`ReplayBuffer`'s); ``over`` is
    called when a publish takes them past ``limit``."""

    __slots__ = ("held", "limit", "over")

    def __init__(self, limit: int, over: Callable[[], None]) -> None:
        self.held = 0
        self.limit = limit
        self.over = over


class RunBuffer:
    """The last frames of a run (at most ``max_events``, and ``max_bytes``), and a way to wait
    for the next ones.

    One publisher appends frames in ``seq`` order and finally calls :meth:`end`. Readers keep
    their own cursor (the last ``seq`` they sent) and call :meth:`since`. A *primary* reader (the
    client that started the run) holds the publisher back instead of losing frames it has not
    sent: the publisher gets a future to await while the buffer is full of such frames, by
    count or by bytes. Past either bound the oldest frames are dropped, but never the newest
    one: a frame bigger than ``max_bytes`` is kept alone.

    A frame's size is the memory its text takes (``sys.getsizeof``: exact, and one call) plus
    :data:`FRAME_OVERHEAD`; ``nbytes`` is the sum.
    """

    __slots__ = (
        "__weakref__",
        "_budget",
        "_frames",
        "_hold",
        "_max_bytes",
        "_max_events",
        "_on_end",
        "_published",
        "_room",
        "_waiters",
        "ended",
        "last_seq",
        "nbytes",
        "owner",
        "run_id",
        "terminal",
    )

    def __init__(self, run_id: str, max_events: int,
                 on_end: Callable[[RunBuffer], None] | None = None,
                 owner: str | None = None, *,
                 max_bytes: int = UNBOUNDED, budget: ByteBudget | None = None) -> None:
        self.run_id = run_id
        #: The run's owner (``RunLog.owner``): the runs router serves its events to it only.
        self.owner = owner
        #: At most ``max_events`` (the deque drops the oldest) and ``max_bytes`` (``_trim``).
        self._frames: deque[Frame] = deque(maxlen=max_events)
        self._max_events = max_events
        self._max_bytes = max_bytes
        #: The bytes of the frames kept (see the class docstring).
        self.nbytes = 0
        self._published = 0
        self._budget = budget
        self.last_seq = 0
        #: The terminal event type once published (run.completed / run.failed / run.cancelled).
        self.terminal: str | None = None
        self.ended = False
        self._on_end = on_end
        #: The futures of the readers waiting for the next frame (one each; see ``waiter``).
        self._waiters: list[asyncio.Future[bool]] = []
        self._hold: int | None = None
        self._room: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._frames)

    # -- publisher ---------------------------------------------------------------------------
    def publish(self, seq: int, type_: str, text: str) -> asyncio.Future[None] | None:
        """Append a frame; returns a future to await before the next one if the primary reader
        is a full buffer behind (by count or by bytes)."""
        if self.ended:  # a run cut off at shutdown that still reports (see ``_live``)
            return None
        frames = self._frames
        size = _sizeof(text) + FRAME_OVERHEAD
        # At max_events the deque drops the oldest frame itself (in C, no call per event here):
        # its bytes go out as this frame's come in.
        grow = size - frames[0][4] if len(frames) == self._max_events else size
        self._published = published = self._published + size
        if type_ == "step.event":  # the common case, without a call (see ``is_default``)
            frames.append((seq, type_, True, text, size, published))
        else:
            frames.append((seq, type_, is_default(type_), text, size, published))
            if type_ in TERMINAL_EVENT_TYPES:
                self.terminal = type_
        self.nbytes = nbytes = self.nbytes + grow
        budget = self._budget
        if budget is not None:
            budget.held += grow
        self.last_seq = seq
        hold = self._hold
        if nbytes > self._max_bytes:
            self._trim(hold)
        if budget is not None and budget.held > budget.limit:
            budget.over()
        if self._waiters:
            self._wake()
        if hold is not None and self._full(hold):
            room = self._room = asyncio.get_running_loop().create_future()
            return room
        return None

    def _trim(self, hold: int | None) -> None:
        """Drop the oldest frames past ``max_bytes``, except the newest one and, while a
        primary reader holds the buffer, the frames it has not sent."""
        frames = self._frames
        max_bytes = self._max_bytes
        nbytes = start = self.nbytes
        while len(frames) > 1 and nbytes > max_bytes:
            if hold is not None and frames[0][0] > hold:
                break
            nbytes -= frames.popleft()[4]
        self.nbytes = nbytes
        budget = self._budget
        if budget is not None:
            budget.held -= start - nbytes

    def _full(self, hold: int) -> bool:
        """Whether the frames a primary reader at ``hold`` has not sent fill the buffer."""
        if self.last_seq - hold >= self._max_events:
            return True
        frames = self._frames
        # Trimming stops at the first unsent frame: past the byte bound with that one oldest,
        # every frame kept is unsent.
        return self.nbytes >= self._max_bytes and bool(frames) and frames[0][0] > hold

    def publish_terminal(self, type_: str, data: dict[str, object]) -> None:
        """Append a terminal event made here (the run could not report its own end)."""
        seq = self.last_seq + 1
        self.publish(seq, type_, json_frame(data, id=seq, event=type_))

    def fail(self, error: BaseException) -> None:
        """End with ``run.failed`` for an error outside the run (it could not start)."""
        self.publish_terminal("run.failed", end_data(failure_data(error), None))
        self.end()

    def end(self) -> None:
        """No more frames will come."""
        if self.ended:
            return
        self.ended = True
        self._wake()
        self._release_room()
        if self._on_end is not None:
            self._on_end(self)

    def drop(self) -> None:
        """Forget every frame (the buffer expired); readers still attached see the end."""
        self._on_end = None
        self._frames.clear()
        if self._budget is not None:
            self._budget.held -= self.nbytes
            self._budget = None
        self.nbytes = 0
        self.end()

    # -- readers -----------------------------------------------------------------------------
    def since(self, cursor: int) -> tuple[list[Frame], int]:
        """Frames after ``cursor``, and how many frames after it were already dropped."""
        frames = self._frames
        if self.last_seq <= cursor or not frames:
            return [], 0
        first = frames[0][0]
        if cursor < first:
            return list(frames), max(0, first - cursor - 1)
        n = len(frames)
        if self.last_seq - first == n - 1:  # contiguous seqs (always, for runstream's runs)
            start = cursor - first + 1
        else:
            start = n
            while start > 0 and frames[start - 1][0] > cursor:
                start -= 1
        if n - start < start:  # read from the nearer end of the deque
            return [frames[i] for i in range(start, n)], 0
        return list(frames)[start:], 0

    def waiter(self) -> asyncio.Future[bool]:
        """A future of the calling reader that the next frame (or the end) completes with
        ``False``. The reader may complete it itself (with ``True``, e.g. for a ping); a reader
        that leaves just cancels it. No task and no timer per wait: a reader that keeps up
        with a token stream waits once per event."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.ended:
            waiter.set_result(False)
            return waiter
        waiters = self._waiters
        if waiters:  # drop the futures of readers that left or were woken by something else
            waiters[:] = [w for w in waiters if not w.done()]
        waiters.append(waiter)
        return waiter

    async def wait(self, patience: float | None) -> bool:
        """Wait until something is published or the run ends; False after ``patience`` s."""
        if self.ended:
            return True
        waiter = self.waiter()
        if patience is None:
            await waiter
            return True
        try:
            await asyncio.wait_for(waiter, patience)
        except TimeoutError:
            return False
        return True

    def hold(self, cursor: int) -> None:
        """A primary reader is at ``cursor``: don't drop frames after it."""
        self._hold = cursor
        if self._room is not None and not self._full(cursor):
            self._release_room()

    def release(self) -> None:
        """The primary reader is gone: frames may be dropped again."""
        self._hold = None
        self._release_room()

    def _wake(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(False)

    def _release_room(self) -> None:
        room = self._room
        if room is not None:
            self._room = None
            if not room.done():
                room.set_result(None)
