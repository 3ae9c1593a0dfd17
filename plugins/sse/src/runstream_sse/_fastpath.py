"""The hot-path tricks of runstream-sse, and what each relies on.

Each is pinned by a test in tests/test_sse_fastpath.py that fails if the behaviour it relies on
changes (a new uvicorn or Python): then drop the trick for the general way it stands in for.

- :func:`start_send` runs the ASGI ``send`` coroutine by hand up to its first suspension
  instead of awaiting it. It relies on uvicorn's ``send`` (h11 and httptools protocols) being a
  coroutine that completes without suspending while the socket has room (it waits only on its
  flow control), so nearly every write costs no timer and no task: only a write that does
  suspend is bounded by the send timeout. Any other awaitable takes the general way.
- :class:`Resume` finishes such a suspended coroutine as the awaiting task would have: it relies
  on asyncio's protocol for a coroutine driven by a task (``send(None)`` to resume it,
  ``throw(exc)`` for a cancellation, the yielded future handed up to the task), so that a resumed
  send completes, fails or is cancelled exactly as an awaited one.
- Callers rely on ``start_send`` returning None only when ``send`` did not yield to the event
  loop: nothing else ran meanwhile (no event published, no disconnect seen), so the writer can
  wait for the next event at once without looking at its feed again (see ``_serve._follow``).
- :func:`no_context` is the context of runstream-sse's own callbacks (a stream's ping timer, its
  end, a task's clean-up, a send to the shared log): asyncio copies the caller's context for
  every callback and timer it is not given one for, one more object per stream for the garbage
  collector to walk. Those callbacks read no context variable, and start no task that would.
  One per thread: a context cannot be entered twice at once, and event loops in two threads
  (two servers in one process) would each enter it.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType
from typing import Any

from starlette.types import Message, Send

_local = threading.local()


def no_context() -> contextvars.Context:
    """This thread's context for runstream-sse's own callbacks (see the module)."""
    try:
        context: contextvars.Context = _local.context
    except AttributeError:
        context = _local.context = contextvars.Context()
    return context


class SendTimeout(Exception):
    """A write to the client did not complete within the send timeout."""


async def send_within(send: Send, message: Message, within: float | None) -> None:
    """``await send(message)``, bounded by ``within`` seconds (None: unbounded)."""
    if within is None:
        await send(message)
        return
    pending = start_send(send, message, within)
    if pending is not None:
        await pending


def start_send(send: Send, message: Message, within: float | None) -> Awaitable[None] | None:
    """Start ``send(message)``; None if it completed at once, else an awaitable that finishes
    it, bounded by ``within`` seconds (None: unbounded).

    The ASGI server's send waits only while the socket's buffers are full (its flow control),
    so nearly every send completes without suspending: it is run up to its first suspension
    here, and only a send that does suspend pays for a timeout (a timer). A client that stops
    reading cannot hold the run forever.
    """
    sending = send(message)
    # The exact type first: a coroutine, every write, skips the ABC's slower isinstance.
    if type(sending) is not CoroutineType and not isinstance(sending, Coroutine):
        # any other awaitable: the general way
        return sending if within is None else _bounded(sending, within)
    try:
        yielded = sending.send(None)
    except StopIteration:
        return None
    resume = Resume(sending, yielded)
    return resume if within is None else _bounded(resume, within)


async def _bounded(sending: Awaitable[None], within: float) -> None:
    try:
        async with asyncio.timeout(within):
            await sending
    except TimeoutError:
        raise SendTimeout(f"a write to the client did not complete within {within} s") from None


class Resume:
    """Awaits a coroutine already run up to its first suspension (``yielded``: what it yielded
    then), as the task driving it would have: ``yield from`` by hand."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        self.coro = coro
        self.yielded = yielded

    def __await__(self) -> Generator[Any, None, None]:
        coro = self.coro
        yielded = self.yielded
        self.yielded = None
        while True:
            try:
                yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation (the timeout), thrown in by the task
                try:
                    yielded = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    yielded = coro.send(None)
                except StopIteration:
                    return
