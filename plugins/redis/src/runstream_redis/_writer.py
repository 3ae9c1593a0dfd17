"""One writer per log instance: every write of every run of this process, coalesced.

Callers (``create``, ``append``, ``end``, readers, slots, cancel) queue their command and await
its reply; one task sends everything queued since its last round trip as ONE pipelined write on
one dedicated connection and hands each caller its own reply, or its own error. With many runs
streaming at once, a loop turn's writes cost one round trip, one send and one read instead of
one pool checkout, send and read each.

- Order: commands go out in the order they were queued, so a run's appends keep their order.
- Bound: at most ``max_entries`` commands and ``max_bytes`` of arguments wait; past either a
  caller waits for room (back-pressure), the queue never grows without bound.
- Errors: a reply that is an error fails its caller only; a connection that fails fails every
  caller of that round trip (after one retry on a fresh connection if nothing was read, as the
  pool's clients do), at once: the next queued commands try a new connection.
- Callbacks: ``script_then`` hands the reply (or the error) to a callback instead of a future
  (no future, and no task of the caller's awaiting it: runstream-sse's tee appends that way).
- ``close()`` sends what is queued before it closes the connection. What a crash loses: the
  commands queued and not yet sent, at most one loop turn's worth (their callers had not been
  told they were written).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import (
    ConnectionError,
    NoScriptError,
    RedisError,
    ResponseError,
    TimeoutError as RedisTimeoutError,
)

try:
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - hiredis is a dependency; redis-py packs otherwise
    _pack = None  # type: ignore[assignment]

__all__ = ["Writer"]

_LOST = (ConnectionError, RedisTimeoutError, OSError, TimeoutError)

logger = logging.getLogger("runstream.redis")

#: Called with ``(reply, None)`` or ``(None, error)`` once a command was written (or failed).
Then = Callable[[Any, BaseException | None], object]


class _Op:
    __slots__ = ("args", "future", "size", "then")

    def __init__(self, args: tuple[Any, ...], size: int, future: asyncio.Future[Any] | None,
                 then: Then | None = None) -> None:
        self.args = args
        self.size = size
        self.future = future
        self.then = then

    def reply(self, reply: Any) -> None:
        if isinstance(reply, RedisError):
            self.fail(reply)
            return
        future = self.future
        if future is None:
            self._call(reply, None)
        elif not future.done():  # (done: its caller was cancelled; the write happened anyway)
            future.set_result(reply)

    def fail(self, error: BaseException) -> None:
        future = self.future
        if future is None:
            self._call(None, error)
        elif not future.done():
            if isinstance(error, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(error)

    def _call(self, reply: Any, error: BaseException | None) -> None:
        assert self.then is not None
        try:
            self.then(reply, error)
        except Exception:  # a bug of the caller's: the other callers still get their replies
            logger.exception("runstream-redis: a write's callback failed")


def _arg(value: Any) -> Any:
    # Text as redis-py's clients send it (lone surrogates kept); bytes and numbers as they are.
    return value.encode("utf-8", "surrogatepass") if type(value) is str else value


class Writer:
    """See the module. ``scripts``: name -> (sha1, source) of the Lua scripts it may run."""

    def __init__(self, pool: ConnectionPool, scripts: dict[str, tuple[str, Any]], *,
                 timeout: float, max_entries: int, max_bytes: int) -> None:
        self._pool = pool
        self._scripts = scripts
        self._timeout = timeout
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._queue: list[_Op] = []
        self._bytes = 0
        self._conn: AbstractConnection | None = None
        #: Whether the scripts were loaded on the connection's current socket.
        self._loaded = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: Round trips made (for tests and profiles).
        self.round_trips = 0

    def script(self, name: str, keys: Sequence[Any], args: Sequence[Any]
               ) -> asyncio.Future[Any]:
        """Run the script ``name``: its reply, or its error, once written."""
        return self.call("EVALSHA", self._scripts[name][0], len(keys), *keys, *args)

    def script_then(self, name: str, keys: Sequence[Any], args: Sequence[Any], then: Then
                    ) -> None:
        """Run the script ``name`` and call ``then(reply, None)`` or ``then(None, error)``
        once written, from the writer's task (never before this returns). Check
        :attr:`has_room` first to respect the bound. Raises ConnectionError if closed."""
        if self._closed:
            raise ConnectionError("the event log is closed")
        self._queue_op(("EVALSHA", self._scripts[name][0], len(keys), *keys, *args), None, then)

    @property
    def has_room(self) -> bool:
        """Whether the queue is under its bounds (see :meth:`room`)."""
        return self._room.is_set()

    def call(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one command (the name, then its arguments); a future of its reply. Await
        :meth:`room` first to respect the bound."""
        if self._closed:
            raise ConnectionError("the event log is closed")
        future = asyncio.get_running_loop().create_future()
        self._queue_op(args, future, None)
        return future

    def _queue_op(self, args: tuple[Any, ...], future: asyncio.Future[Any] | None,
                  then: Then | None) -> None:
        args = tuple(map(_arg, args))
        size = 16
        for value in args:
            size += len(value) if type(value) is bytes else 8
        self._queue.append(_Op(args, size, future, then))
        self._bytes += size
        if len(self._queue) >= self.max_entries or self._bytes >= self.max_bytes:
            self._room.clear()
        task = self._task
        if task is None or task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="runstream-redis writer")
        self._wake.set()

    async def room(self) -> None:
        """Wait until the queue is under its bounds (returns at once when it is)."""
        while not self._room.is_set():
            await self._room.wait()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            ops, self._queue, self._bytes = self._queue, [], 0
            self._room.set()
            await self._flush(ops)

    async def _flush(self, ops: list[_Op]) -> None:
        self.round_trips += 1
        try:
            async with asyncio.timeout(self._timeout):
                replies = await self._send(ops)
                if any(isinstance(r, NoScriptError) for r in replies):
                    # Its scripts were flushed (SCRIPT FLUSH): load them, run those again.
                    again = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
                    for i, reply in zip(again, await self._send([ops[i] for i in again]),
                                        strict=True):
                        replies[i] = reply
        except _LOST as exc:
            await self._drop()
            error = ConnectionError(str(exc) or type(exc).__name__)
            for op in ops:
                op.fail(ConnectionError(*error.args))
            return
        except Exception as exc:  # not Redis's doing (an argument it cannot take, a bug)
            await self._drop()
            for op in ops:
                op.fail(exc)
            return
        except BaseException:  # cancelled (the loop is closing): so are the callers' writes
            await self._drop()
            for op in ops:
                op.fail(asyncio.CancelledError())
            raise
        for op, reply in zip(ops, replies, strict=True):
            op.reply(reply)

    async def _send(self, ops: list[_Op]) -> list[Any]:
        """Write ``ops`` in one go and read their replies (one retry on a fresh connection if
        the connection was lost before any reply was read, e.g. after Redis restarted)."""
        for attempt in (0, 1):
            conn = await self._connection()
            commands = [op.args for op in ops]
            loading = not self._loaded
            if loading:  # a new connection: make sure its server has the scripts
                commands = [(b"SCRIPT", b"LOAD", src) for _, src in self._scripts.values()
                            ] + commands
            replies: list[Any] = []
            try:
                if _pack is not None:
                    await conn.send_packed_command([_pack(c) for c in commands],
                                                   check_health=False)
                else:  # pragma: no cover
                    await conn.send_packed_command(conn.pack_commands(commands),
                                                   check_health=False)
                for _ in commands:
                    try:
                        replies.append(await conn.read_response(timeout=math.inf))
                    except ResponseError as exc:
                        replies.append(exc)
            except _LOST:
                await self._drop()
                if replies or attempt:
                    raise
                continue
            self._loaded = True
            return replies[len(commands) - len(ops):]
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(self) -> AbstractConnection:
        conn = self._conn
        if conn is None:
            conn = self._conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
            self._loaded = False
        elif not conn.is_connected:
            await conn.connect()  # type: ignore[no-untyped-call]
            self._loaded = False
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(RedisError, OSError):
                await conn.disconnect()
            await self._pool.release(conn)
        self._loaded = False

    async def close(self) -> None:
        """Send what is queued, then close the connection (the writer is not used again)."""
        self._closed = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop()
        with contextlib.suppress(RedisError, OSError):
            await self._pool.aclose()
