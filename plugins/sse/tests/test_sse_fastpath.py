"""The behaviour that runstream-sse's hot-path tricks (``runstream_sse._fastpath``) rely on.

If one of these fails after an upgrade (uvicorn, Python), the trick it pins no longer holds:
replace it with the general way (``await send(message)`` under ``asyncio.timeout``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import httpx
import pytest
from runstream_sse import _fastpath
from runstream_sse._fastpath import Resume, SendTimeout, start_send
from starlette.types import Message, Receive, Scope, Send

from tests._server import serve

CHUNK = b"x" * (256 * 1024)


class Probe:
    """What the app saw of uvicorn's send, across the server's thread."""

    def __init__(self) -> None:
        self.coroutine = False
        self.first_at_once = False
        self.chunks_sent = 0
        self.suspended = threading.Event()
        self.finished = threading.Event()
        self.error: BaseException | None = None


def make_app(probe: Probe) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            message = {"type": "http.response.body", "body": CHUNK, "more_body": True}
            sending = send(message)
            probe.coroutine = isinstance(sending, Coroutine)
            await sending
            probe.chunks_sent = 1
            # The client reads nothing now: the socket fills up, and a send suspends.
            first = True
            while probe.chunks_sent < 1000:
                pending = start_send(send, message, None)
                if first:
                    probe.first_at_once = pending is None
                    first = False
                probe.chunks_sent += 1
                if pending is not None:
                    assert isinstance(pending, Resume)
                    probe.suspended.set()
                    await pending  # finishes once the client reads: as if awaited
                    break
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except BaseException as exc:  # reported to the test
            probe.error = exc
            raise
        finally:
            probe.finished.set()

    return app


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_uvicorn_send_completes_at_once_with_room_and_resume_finishes_a_suspended_one(
        http: str) -> None:
    probe = Probe()
    with serve(make_app(probe), http=http) as base, httpx.Client(timeout=20) as client:
        with client.stream("GET", base) as response:
            assert probe.suspended.wait(10), "uvicorn's send never suspended on a full socket"
            received = sum(len(part) for part in response.iter_bytes())
        assert probe.finished.wait(10)
    assert probe.error is None
    assert probe.coroutine  # start_send drives a coroutine, not any awaitable
    assert probe.first_at_once  # with room in the socket: completed without suspending
    assert received == probe.chunks_sent * len(CHUNK)  # every byte, the resumed send's too


def _suspending_send(gate: asyncio.Future[None], seen: list[str]) -> Send:
    async def send(message: Message) -> None:
        seen.append("start")
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("done")
    return send


async def test_resume_returns_what_the_awaited_send_returns() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    pending = start_send(_suspending_send(gate, seen), {"type": "x"}, None)
    assert isinstance(pending, Resume)
    assert seen == ["start"]
    asyncio.get_running_loop().call_soon(gate.set_result, None)
    await pending
    assert seen == ["start", "done"]


async def test_resume_raises_what_the_awaited_send_raises() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pending = start_send(_suspending_send(gate, []), {"type": "x"}, None)
    assert pending is not None
    asyncio.get_running_loop().call_soon(gate.set_exception, OSError("connection lost"))
    with pytest.raises(OSError, match="connection lost"):
        await pending


async def test_a_cancelled_resume_cancels_the_send_inside_it() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    pending = start_send(_suspending_send(gate, seen), {"type": "x"}, None)
    assert pending is not None

    waiting = asyncio.Event()

    async def wait() -> None:
        waiting.set()
        await pending

    task = asyncio.get_running_loop().create_task(wait())
    await waiting.wait()  # the task went on into ``await pending``: it waits on the gate now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["start", "cancelled"]
    assert gate.cancelled()  # as an awaited send: the future it waited on is cancelled


async def test_a_bounded_send_that_does_not_complete_in_time_is_a_send_timeout() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []
    pending = start_send(_suspending_send(gate, seen), {"type": "x"}, 0.05)
    assert pending is not None
    with pytest.raises(SendTimeout):
        await pending
    assert seen == ["start", "cancelled"]


def test_callbacks_in_the_own_context_run_on_loops_in_two_threads_at_once() -> None:
    """Two servers in one process (each loop in its thread) run runstream-sse's callbacks at
    the same time: each thread has its own context (one shared context could be entered by
    one loop only, and the other's callback would fail with "already entered")."""
    errors: list[object] = []
    both = threading.Barrier(2)

    def callback() -> None:
        both.wait(timeout=10)  # both threads are inside their callback at once

    def loop_in_thread() -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        try:
            loop.call_soon(callback, context=_fastpath.no_context())
            loop.call_soon(loop.stop)
            loop.run_forever()
        finally:
            loop.close()

    threads = [threading.Thread(target=loop_in_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []
