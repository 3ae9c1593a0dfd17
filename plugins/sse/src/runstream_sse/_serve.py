"""Writing a run's buffer to one HTTP client, and noticing when the client goes away."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from typing import TYPE_CHECKING

from starlette.types import Message, Receive, Send

from ._buffer import RunBuffer
from ._encoder import PING, encode_event, json_dumps, to_bytes

if TYPE_CHECKING:
    from ._inflight import RunsInFlight


class Outcome(enum.Enum):
    """How a stream ended."""

    #: The run's end was sent and the response completed.
    ENDED = "ended"
    #: The client went away (or the stream was cut at shutdown).
    GONE = "gone"
    #: A write did not complete within the send timeout: the client does not read.
    STALLED = "stalled"


class SendTimeout(Exception):
    """A write to the client did not complete within the send timeout."""


async def _send(send: Send, message: Message, within: float | None) -> None:
    if within is None:
        await send(message)
        return
    # The ASGI server's send waits while the socket's buffers are full (its flow control):
    # bound that wait, so a client that stops reading cannot hold the run forever.
    try:
        async with asyncio.timeout(within):
            await send(message)
    except TimeoutError:
        raise SendTimeout(f"a write to the client did not complete within {within} s") from None


def _gap_frame(cursor: int, first: int, missed: int) -> str:
    # No id: the client's Last-Event-ID stays where it was.
    return encode_event(json_dumps({"after": cursor, "next": first, "missed": missed}),
                        event="replay.gap")


async def _follow(send: Send, buffer: RunBuffer, cursor: int, lifecycle: bool,
                  ping_interval: float | None, primary: bool, send_timeout: float | None
                  ) -> None:
    """Send the frames after ``cursor`` until the run's end, pinging while idle.

    Everything queued since the last write goes out in one write: a fast producer costs one
    ``send`` per batch, not per event.
    """
    if primary:
        buffer.hold(cursor)
    try:
        while True:
            frames, missed = buffer.since(cursor)
            if frames:
                if lifecycle:
                    text = "".join([f[3] for f in frames])
                else:
                    text = "".join([f[3] for f in frames if f[2]])
                if missed:
                    text = _gap_frame(cursor, frames[0][0], missed) + text
                cursor = frames[-1][0]
                if text:
                    await _send(send, {"type": "http.response.body", "body": to_bytes(text),
                                       "more_body": True}, send_timeout)
                if primary:
                    buffer.hold(cursor)
            elif buffer.ended:
                return
            elif not await buffer.wait(ping_interval):
                await _send(send, {"type": "http.response.body", "body": PING,
                                   "more_body": True}, send_timeout)
    finally:
        if primary:
            buffer.release()


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


async def stream_buffer(receive: Receive, send: Send, buffer: RunBuffer, cursor: int, *,
                        lifecycle: bool, ping_interval: float | None, primary: bool,
                        send_timeout: float | None = None, runs: RunsInFlight | None = None
                        ) -> Outcome:
    """Stream ``buffer`` after ``cursor`` (the response has started) and say how it ended.

    The writer and the disconnect watcher are tasks of their own, so a disconnect is seen at
    once even while the writer waits for events or for a slow socket. ``runs`` learns about the
    writer, so that a shutdown can wait for it (and cut it at its deadline). A stalled stream
    returns without completing the response: the client must not take a cut stream for a
    whole one (the server then closes the connection).
    """
    loop = asyncio.get_running_loop()
    writer = loop.create_task(
        _follow(send, buffer, cursor, lifecycle, ping_interval, primary, send_timeout),
        name=f"runstream-sse-writer-{buffer.run_id}")
    if runs is not None:
        runs._add_stream(writer)
    watcher = loop.create_task(_wait_disconnect(receive),
                               name=f"runstream-sse-watch-{buffer.run_id}")
    try:
        await asyncio.wait((writer, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        writer.cancel()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait((writer, watcher))
    if watcher.done() and not watcher.cancelled():
        return Outcome.GONE
    if writer.cancelled():
        return Outcome.GONE
    error = writer.exception()
    if error is None:
        try:
            await _send(send, {"type": "http.response.body", "body": b"", "more_body": False},
                        send_timeout)
        except SendTimeout:
            return Outcome.STALLED
        return Outcome.ENDED
    if isinstance(error, SendTimeout):
        return Outcome.STALLED
    if isinstance(error, OSError):  # ASGI servers may raise it on send to a closed connection
        return Outcome.GONE
    raise error
