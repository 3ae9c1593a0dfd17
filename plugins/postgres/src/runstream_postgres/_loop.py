"""The store's own event loop, in a thread of its own, where its connection pool lives.

A psycopg pool belongs to the event loop it was opened in, and its background tasks (which
open connections) do not end when cancelled: they retry, by design, until the pool is closed.
A pool opened in the caller's loop would therefore hang ``asyncio.run()`` at the end of every
``Pipeline.execute()`` given a long-lived runtime (each runs in a new loop), and could not serve
the next one. In a loop of its own the pool serves callers from any loop, lives as long as the
store, and is closed by :meth:`RunLogStore.close` (the ``sqlite`` store keeps its connection in
a thread of its own for a like reason).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._serve, args=(loop,), name=self._name,
                                          daemon=True)
                thread.start()
                self._loop = loop
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the thread's loop; cancelling the caller cancels it there."""
        future = asyncio.run_coroutine_threadsafe(coro, self._running())
        return await asyncio.wrap_future(future)

    async def stop(self, last: Coroutine[Any, Any, None] | None = None) -> None:
        """Run ``last`` (closing what lives in the loop), then stop the loop and its thread."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            if last is not None:
                last.close()
            return
        try:
            if last is not None:
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(last, loop))
        finally:
            loop.call_soon_threadsafe(loop.stop)
