"""Writing a run's buffer to one HTTP client, and noticing when the client goes away."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import Message, Receive, Send

from ._buffer import RunBuffer
from ._encoder import PING, encode_event, json_dumps, to_bytes


def _gap_frame(cursor: int, first: int, missed: int) -> str:
    # No id: the client's Last-Event-ID stays where it was.
    return encode_event(json_dumps({"after": cursor, "next": first, "missed": missed}),
                        event="replay.gap")


async def _follow(send: Send, buffer: RunBuffer, cursor: int, lifecycle: bool,
                  ping_interval: float | None, primary: bool) -> None:
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
                    await send({"type": "http.response.body", "body": to_bytes(text),
                                "more_body": True})
                if primary:
                    buffer.hold(cursor)
            elif buffer.ended:
                return
            elif not await buffer.wait(ping_interval):
                await send({"type": "http.response.body", "body": PING, "more_body": True})
    finally:
        if primary:
            buffer.release()


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


async def stream_buffer(receive: Receive, send: Send, buffer: RunBuffer, cursor: int, *,
                        lifecycle: bool, ping_interval: float | None, primary: bool) -> bool:
    """Stream ``buffer`` after ``cursor`` (the response has started). Returns True when the
    run's end was sent, False when the client went away first.

    The writer and the disconnect watcher are tasks of their own, so a disconnect is seen at
    once even while the writer waits for events or for a slow socket.
    """
    loop = asyncio.get_running_loop()
    writer = loop.create_task(
        _follow(send, buffer, cursor, lifecycle, ping_interval, primary),
        name=f"runstream-sse-writer-{buffer.run_id}")
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
        return False
    if writer.cancelled():
        return False
    error = writer.exception()
    if error is None:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True
    if isinstance(error, OSError):  # ASGI servers may raise it on send to a closed connection
        return False
    raise error
