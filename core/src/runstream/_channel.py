"""A bounded, single-consumer channel that hands events over in batches.

An ``asyncio.Queue`` costs a task switch per item when the consumer is waiting; a token stream
pays that anyway, but a producer that never awaits would either block the loop until it ends or
pay ~4 us per event. Here producers append to a list and only wait when the channel is full, and
the consumer takes everything queued at once (:meth:`Channel.batches`) before it waits again.

- A slow consumer holds producers at ``capacity`` items (backpressure, bounded memory). A batch
  counts against ``capacity`` until the consumer comes back for the next one, so "produced but
  not yet consumed" stays within ``capacity`` (plus one item per blocked producer).
- Items may carry a size in bytes (``push(item, nbytes)``): producers also wait once the queued
  items (the held batch included) reach ``max_bytes``, so a few big items bound the memory
  as surely as many small ones. Like the count, one item per blocked producer may go past it.
- While the consumer keeps up (it is waiting for items), a producer that never awaits hands over
  after ``batch`` items instead: one pair of task switches per ``batch`` items, an earlier first
  event, and fewer live objects, which matters more than it seems: with 2 x 1,024 events in
  flight the cyclic garbage collector ran often enough to cost ~20% of the throughput.
- A consumer may also take items as they are pushed (:meth:`Channel.take_directly`): a plain
  call in the producer's task, so an item it takes costs no wake-up of the consumer's task.
  What it leaves goes to the batches, and so does everything pushed after, until the batch
  holding it has been consumed: items come out in order whichever way they go.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: No bound (the count and byte limits once the run is ending, see :meth:`Channel.release`).
UNBOUNDED = 1 << 62


class Channel(Generic[T]):
    __slots__ = ("_batch", "_buf", "_byte_room", "_bytes", "_capacity", "_closed", "_detached",
                 "_direct", "_flush", "_flush_bytes", "_getter", "_low", "_low_bytes",
                 "_max_bytes", "_putters", "_room", "_taken", "_taken_bytes", "_yield_bytes",
                 "_yield_every")

    def __init__(self, capacity: int = 1024, batch: int = 256,
                 max_bytes: int = UNBOUNDED) -> None:
        if capacity < 1 or batch < 1:
            raise ValueError("capacity and batch must be at least 1")
        self._buf: list[T] = []
        #: The bytes of the items in ``_buf``.
        self._bytes = 0
        #: The batch the consumer holds: it still counts against capacity. None, and no
        #: putters' list below, until there is one: a run's channel lives as long as the run,
        #: and each list is one more object for the cyclic garbage collector to walk.
        self._batch: list[T] | None = None
        self._capacity = capacity
        #: How many items may be queued before producers wait: capacity minus the held batch.
        self._room = capacity
        self._low = capacity // 2
        #: The room while the consumer waits: hand over after this many items.
        self._flush = min(batch, capacity)
        self._getter: asyncio.Future[None] | None = None
        self._putters: list[asyncio.Future[None]] | None = None
        self._closed = False
        self._detached = False
        #: Takes items as they are pushed (see :meth:`take_directly`), None: nothing does.
        self._direct: Callable[[T], bool] | None = None
        #: Items taken directly since the producer was last made to yield.
        self._taken = self._taken_bytes = 0
        self._yield_every = self._flush
        self.limit_bytes(max_bytes)

    def limit_bytes(self, max_bytes: int) -> None:
        """Let producers queue at most ``max_bytes`` (the sizes given to :meth:`push`); set it
        before the first item."""
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self._max_bytes = self._byte_room = max_bytes
        self._low_bytes = max_bytes // 2
        #: While the consumer waits, hand over after this many bytes (as after ``batch`` items).
        self._flush_bytes = self._yield_bytes = max(1, max_bytes // 4)

    def push(self, item: T, nbytes: int = 0) -> asyncio.Future[None] | None:
        """Queue ``item`` (of ``nbytes`` bytes); returns a future to await when the channel is
        full, else None."""
        # The per-event hot path: keep it to a few attribute loads.
        if self._detached:
            return None
        buf = self._buf
        direct = self._direct
        if direct is not None and not buf and not self._batch:
            # Nothing queued nor held ahead of it: the consumer may take it here and now.
            try:
                took = direct(item)
            except Exception:  # left to the batches, where the consumer meets it again
                took = False
            if took:
                self._taken = taken = self._taken + 1
                self._taken_bytes = taken_bytes = self._taken_bytes + nbytes
                if taken < self._yield_every and taken_bytes < self._yield_bytes:
                    return None
                # A producer that never awaits would hold the loop (and the consumer's
                # readers) until it ends: it yields once every ``batch`` items (or a quarter
                # of ``max_bytes``), as it would hand a batch over.
                self._taken = self._taken_bytes = 0
                return _yield_once()
        buf.append(item)
        self._bytes = queued = self._bytes + nbytes
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)
        if len(buf) >= self._room or queued >= self._byte_room:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._putters is None:
                self._putters = []
            self._putters.append(waiter)
            # Each producer awaits its own future: a cancelled producer cancels only its own.
            return waiter
        return None

    def close(self) -> None:
        """No more items will come; the consumer drains what is queued, then stops."""
        self._closed = True
        self._wake_getter()

    def detach(self) -> None:
        """The consumer is gone: drop what is queued and never block producers again."""
        self._detached = True
        self._buf.clear()
        self._bytes = 0
        # Clearing the held batch in place also ends a consumer's ``for item in batch`` early.
        if self._batch is not None:
            self._batch.clear()
        self._wake_putters()

    def release(self) -> None:
        """Stop applying backpressure (the run is ending): pushes never wait from now on.

        The closing event must not wait for a reader that may itself be waiting for the run
        (``await handle.cancel()`` inside ``async for event in handle``).
        """
        self._capacity = self._room = self._flush = UNBOUNDED
        self._max_bytes = self._byte_room = self._flush_bytes = UNBOUNDED
        self._wake_putters()

    def take_directly(self, consumer: Callable[[T], bool] | None) -> None:
        """Offer each item to ``consumer`` as it is pushed, in the producer's task, while
        nothing is queued nor held by the consumer ahead of it (None: stop offering).

        ``consumer(item)`` returns True if it took the item (it is in no batch then), False to
        leave it to :meth:`batches` (an exception counts as False, nothing may be half done);
        it must not block. A taken item counts against no bound of the channel: the consumer
        bounds what it takes (it leaves items once it is full, and they queue here).
        """
        self._direct = consumer

    @property
    def detached(self) -> bool:
        return self._detached

    def __len__(self) -> int:
        return len(self._buf)

    def _wake_getter(self) -> None:
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    def _wake_putters(self) -> None:
        putters, self._putters = self._putters, None
        for waiter in putters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def batches(self) -> AsyncIterator[list[T]]:
        """Yield lists of queued items, oldest first, until the channel is closed and drained
        (or detached). Consume each batch before asking for the next: it holds capacity."""
        while True:
            got = self.next_batch()
            if got is None:
                return
            if isinstance(got, list):
                yield got
            else:
                await got

    def next_batch(self) -> list[T] | asyncio.Future[None] | None:
        """One step of :meth:`batches`, for a consumer with a loop of its own (an async
        generator less per consumer, e.g. ``RunHandle.batches``): the next batch; or a future
        to await before asking again, when nothing is queued; or None once the channel is
        closed and drained (or detached). Asking releases the batch handed out last time."""
        # A getter is forgotten once woken; one left by a consumer cancelled while it waited
        # (cancelled too, so never woken) is forgotten here.
        self._getter = None
        # Coming back for more releases the batch handed out last time.
        self._batch = None
        self._room = capacity = self._capacity
        self._byte_room = max_bytes = self._max_bytes
        batch = self._buf
        if batch:
            self._buf = []
            self._batch = batch
            self._room = room = capacity - len(batch)
            self._byte_room = byte_room = max_bytes - self._bytes
            self._bytes = 0
            # Let producers refill while the batch is consumed, unless that would only
            # ping-pong a few items at a time.
            if self._putters and room >= self._low and byte_room >= self._low_bytes:
                self._wake_putters()
            return batch
        if self._putters:
            self._wake_putters()
        if self._closed or self._detached:
            return None
        # Waiting: the next ``batch`` items (or bytes' worth) are enough for a hand-over.
        self._room = self._flush
        self._byte_room = self._flush_bytes
        getter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._getter = getter
        return getter

    async def __aiter__(self) -> AsyncIterator[T]:
        """Yield queued items one at a time (see :meth:`batches` for the faster form)."""
        async for batch in self.batches():
            for item in batch:
                yield item


def _yield_once() -> asyncio.Future[None]:
    """A future done on the loop's next iteration: awaiting it yields to the loop once."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    loop.call_soon(_done, future)
    return future


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():  # its producer may have been cancelled meanwhile
        future.set_result(None)
