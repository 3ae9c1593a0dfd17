"""Following runs: one tail per log instance, whatever the number of readers.

Redis pub/sub is the wake-up, the stream is the truth. ``APPEND`` publishes each batch on the
run's channel (named as its events key): ``b"{first_seq}\\n"`` and the values joined with
newlines, or an empty payload when the seqs are not contiguous; ``END`` publishes an empty
payload. The tail holds ONE pub/sub connection: a reader subscribes to its run's channel (the
process's readers of one run share the subscription; the last one to stop unsubscribes) and is
handed

- a published batch that starts at its cursor + 1 as it is (records at or below the cursor,
  from a batch sent again, are skipped): no round trip at all;
- otherwise (a gap: records published before it subscribed, or trimmed; an empty payload; the
  subscription's confirmation, which closes the race with the reader's first read and covers a
  reconnect) the stream from its cursor, read with a non-blocking ``XREAD``. The runs that need
  one at the same moment share ONE ``XREAD`` (each from its readers' lowest cursor); the
  notifications that come while it is in flight go in the next one, as ``_writer`` does for
  writes.

A reader handed nothing for ``block`` seconds is woken by the sweep (one timer for every reader)
and checks the run itself: still running and driven, ended, or gone (``STATUS``), and reads the
stream from its cursor (which also serves a writer of an older version, that publishes nothing).

The pub/sub connection lost: a new one is tried at once (its subscriptions are made again and
each confirmation reads the stream, so nothing published meanwhile is lost); if it cannot be
had, every waiting reader raises ``EventLogError``, and the next follow starts a new tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from bisect import bisect_right
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from hiredis import pack_command
from redis.exceptions import RedisError
from runstream import TERMINAL_EVENT_TYPES, EventLogError

from ._clients import Clients, as_error, errors
from ._codec import parse_entries, parse_published

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool
    from redis.asyncio.connection import AbstractConnection
    from runstream import EventRecord

__all__ = ["READ_COUNT", "Reader", "Tail"]

#: Entries one XREAD returns at most (per stream).
READ_COUNT = 1000

_SUBSCRIBE, _UNSUBSCRIBE = b"SUBSCRIBE", b"UNSUBSCRIBE"


class Reader:
    """One follower of a run: its cursor (the seq of the last record it was handed) and what
    the tail has handed it that it has not taken yet."""

    __slots__ = ("channel", "deadline", "done", "error", "pending", "pos", "run_id", "waiter")

    def __init__(self, run_id: str, channel: bytes, pos: int) -> None:
        self.run_id = run_id
        self.channel = channel
        self.pos = pos
        self.pending: list[EventRecord] = []
        self.done = False
        self.error: EventLogError | None = None
        self.waiter: asyncio.Future[bool] | None = None
        self.deadline = 0.0

    def wake(self, handed: bool) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(handed)


class Tail:
    """See the module. ``pool``: the pub/sub connection's (one connection)."""

    def __init__(self, url: str, clients: Clients, pool: ConnectionPool, drivers: str, *,
                 block: float) -> None:
        self._url = url
        self._clients = clients
        self._pool = pool
        self._drivers = drivers
        self._block = block
        #: channel -> its readers (insertion ordered).
        self._runs: dict[bytes, dict[Reader, None]] = {}
        self._confirmed: set[bytes] = set()
        self._dirty: dict[bytes, None] = {}
        self._ops: list[tuple[bytes, bytes]] = []
        self._conn: AbstractConnection | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        #: XREADs sent for readers (for tests and profiles).
        self.reads = 0

    # -- readers ---------------------------------------------------------------------------
    async def records(self, reader: Reader, meta: str, events: str
                      ) -> AsyncIterator[list[EventRecord]]:
        """The records of the reader's run after its cursor as they come, until it ends."""
        try:
            while True:
                if reader.pending:
                    batch, reader.pending = reader.pending, []
                    yield batch
                    continue
                if reader.error is not None:
                    raise reader.error
                if reader.done:
                    return
                if not await self._wait(reader) and reader.error is None and not reader.done:
                    # Nothing for `block` s: check the run. What the tail handed meanwhile
                    # comes first (lower seqs).
                    batch = await self._check(reader, meta, events)
                    reader.pending = reader.pending + batch if reader.pending else batch
        finally:
            self.leave(reader)

    def join(self, run_id: str, events: str, pos: int) -> Reader:
        """A follower of the run whose events key is ``events``, from seq ``pos``: subscribed
        at once; call :meth:`leave` once done with it."""
        channel = events.encode()
        reader = Reader(run_id, channel, pos)
        readers = self._runs.get(channel)
        if readers is None:
            self._runs[channel] = {reader: None}
            self._send(_SUBSCRIBE, channel)  # its confirmation reads the stream
        else:
            readers[reader] = None
            if channel in self._confirmed:  # what was published during its first read
                self._mark(channel)
        self._start("listen", self._listen)
        self._start("sweep", self._sweep)
        return reader

    def leave(self, reader: Reader) -> None:
        reader.done = True
        readers = self._runs.get(reader.channel)
        if readers is None or reader not in readers:
            return
        del readers[reader]
        if not readers:
            del self._runs[reader.channel]
            self._confirmed.discard(reader.channel)
            self._dirty.pop(reader.channel, None)
            self._send(_UNSUBSCRIBE, reader.channel)

    async def _wait(self, reader: Reader) -> bool:
        """Until the reader is handed something (True), or nothing came for ``block`` s."""
        loop = asyncio.get_running_loop()
        reader.deadline = loop.time() + self._block
        reader.waiter = loop.create_future()
        try:
            return await reader.waiter
        finally:
            reader.waiter = None

    async def _check(self, reader: Reader, meta: str, events: str) -> list[EventRecord]:
        """Nothing came for ``block`` seconds: is the run still running and driven? Then the
        stream from the reader's cursor (its end marker, records nobody published)."""
        clients = self._clients
        with self._errors(reader.run_id):
            status = await clients.script("STATUS", [meta, self._drivers], [reader.run_id])
            got: Any = await clients.commands.xread({events: b"%d-0" % reader.pos},
                                                    count=READ_COUNT)
        entries = got[0][1] if got else []
        batch: list[EventRecord] = []
        if entries:
            records, _, ended = parse_entries(entries)
            batch = self._take(reader, records, ended)
        if len(entries) >= READ_COUNT:
            self._mark(reader.channel)  # more than one read's worth
        elif status != b"running":
            # Ended (its marker was read) or its keys are gone, or its driver is (killed:
            # nobody will end it): nothing more comes.
            reader.done = True
        return batch

    def _errors(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        return errors(self._url, f"read run '{run_id}'")

    # -- handing records -------------------------------------------------------------------
    def _take(self, reader: Reader, batch: list[EventRecord], ended: bool
              ) -> list[EventRecord]:
        """The part of ``batch`` (records in seq order; ``ended``: the run ends with it) after
        the reader's cursor; moves the cursor."""
        if batch and batch[0][0] <= reader.pos:
            batch = batch[bisect_right(batch, reader.pos, key=_seq):]
        if batch:
            reader.pos = batch[-1][0]
        if ended:
            reader.done = True
        return batch

    def _hand(self, readers: Iterable[Reader], batch: list[EventRecord], ended: bool,
              low: int) -> None:
        """Hand ``batch`` (all the records after seq ``low``) to the readers at or after
        ``low``."""
        for reader in list(readers):
            if reader.done or reader.pos < low:
                continue
            got = self._take(reader, batch, ended)
            if got:
                if reader.pending:
                    reader.pending.extend(got)
                else:
                    reader.pending = got if got is not batch else list(got)
            if got or reader.done:
                reader.wake(True)
            if reader.done:
                self.leave(reader)  # a reader that is not closed at once unsubscribes now

    def _on_message(self, message: list[Any]) -> None:
        kind, channel = message[0], message[1]
        readers = self._runs.get(channel)
        if readers is None:
            return
        if kind == b"subscribe":
            self._confirmed.add(channel)
            self._mark(channel)
            return
        if kind != b"message":
            return
        payload = message[2]
        if not payload:  # not contiguous, or the run ended: read the stream
            self._mark(channel)
            return
        first = int(payload[:payload.index(b"\n")])
        low = high = -1
        for reader in readers:
            if low < 0 or reader.pos < low:
                low = reader.pos
            high = max(high, reader.pos)
        if first > low + 1:
            self._mark(channel)  # a gap for some of them: the stream has it
        if first <= high + 1:  # someone's next records (or already had: skipped)
            batch = parse_published(payload)
            self._hand(readers, batch, batch[-1][2] in TERMINAL_EVENT_TYPES, first - 1)

    def _mark(self, channel: bytes) -> None:
        self._dirty[channel] = None
        self._start("read", self._read)

    async def _read(self) -> None:
        """One XREAD for every run marked since the last one, until none is."""
        while self._dirty:
            keys, cursors = [], []
            for channel in self._dirty:
                readers = self._runs.get(channel)
                if readers:
                    keys.append(channel)
                    cursors.append(min(r.pos for r in readers))
            self._dirty.clear()
            if not keys:
                continue
            self.reads += 1
            try:
                got = await self._clients.commands.execute_command(  # type: ignore[no-untyped-call]
                    "XREAD", "COUNT", READ_COUNT, "STREAMS", *keys,
                    *(b"%d-0" % c for c in cursors))
            except (RedisError, OSError) as exc:
                for channel in keys:
                    self._fail(self._runs.get(channel, {}), exc)
                continue
            low = dict(zip(keys, cursors, strict=True))
            for channel, entries in got or ():
                readers = self._runs.get(channel)
                if readers and entries:
                    batch, _, ended = parse_entries(entries)
                    self._hand(readers, batch, ended, low[channel])
                    if len(entries) >= READ_COUNT and channel in self._runs:
                        self._mark(channel)  # more than one read's worth

    async def _sweep(self) -> None:
        """Wakes the readers that were handed nothing for ``block`` seconds."""
        loop = asyncio.get_running_loop()
        while self._runs:
            await asyncio.sleep(self._block / 4)
            now = loop.time()
            for readers in list(self._runs.values()):
                for reader in readers:
                    if reader.waiter is not None and reader.deadline <= now:
                        reader.wake(False)

    def _fail(self, readers: Iterable[Reader], exc: BaseException) -> None:
        for reader in list(readers):
            reader.error = as_error(self._url, f"read run '{reader.run_id}'", exc)
            reader.wake(False)
            self.leave(reader)

    # -- the pub/sub connection ------------------------------------------------------------
    def _start(self, name: str, run: Any) -> None:
        task = self._tasks.get(name)
        if (task is None or task.done()) and not self._closed:
            self._tasks[name] = asyncio.get_running_loop().create_task(
                run(), name=f"runstream-redis tail {name}")

    def _send(self, command: bytes, channel: bytes) -> None:
        if self._conn is not None:  # else the connection subscribes to every run when made
            self._ops.append((command, channel))
            self._start("send", self._sender)

    async def _sender(self) -> None:
        """Sends the queued (un)subscriptions, consecutive ones of a kind as one command."""
        while self._ops:
            conn = self._conn
            if conn is None or not conn.is_connected:
                return  # lost: the listener connects again and subscribes to every run
            ops, self._ops = self._ops, []
            commands: list[list[bytes]] = []
            for command, channel in ops:
                if commands and commands[-1][0] == command:
                    commands[-1].append(channel)
                else:
                    commands.append([command, channel])
            with contextlib.suppress(RedisError, OSError):  # the listener sees it too
                await conn.send_packed_command([pack_command(tuple(c))  # type: ignore[arg-type]
                                                for c in commands], check_health=False)

    async def _listen(self) -> None:
        retried = False
        while True:
            connected = False
            try:
                conn = self._conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
                connected = True
                self._cancelled()
                self._ops = [(_SUBSCRIBE, channel) for channel in self._runs]
                self._confirmed.clear()
                self._start("send", self._sender)
                while True:
                    message = await conn.read_response(timeout=math.inf)
                    retried = False
                    if type(message) is list:
                        self._on_message(message)
            except (RedisError, OSError) as exc:
                await self._drop()
                self._cancelled()
                if connected and not retried and self._runs:
                    retried = True  # it worked until now: one new connection at once
                    continue
                self._fail([r for readers in self._runs.values() for r in readers], exc)
                return
            except BaseException:
                await self._drop()
                raise

    def _cancelled(self) -> None:
        """Raise CancelledError if the listener was cancelled, or the tail closed, while in
        redis-py: its connect may swallow a cancel (the connection is made anyway) or turn it
        into a connection error."""
        task = asyncio.current_task()
        if self._closed or (task is not None and task.cancelling()):
            raise asyncio.CancelledError

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._ops.clear()
        if conn is not None:
            with contextlib.suppress(RedisError, OSError):
                await conn.disconnect()
            await self._pool.release(conn)

    async def close(self) -> None:
        """Stops following: the readers still waiting raise EventLogError."""
        self._closed = True
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop()
        self._fail([r for readers in self._runs.values() for r in readers],
                   ConnectionError("the event log was closed"))
        with contextlib.suppress(RedisError, OSError):
            await self._pool.aclose()


def _seq(record: EventRecord) -> int:
    return record[0]
