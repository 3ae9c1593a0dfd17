"""Group commit for the sqlite store: one thread owns the connection and runs the calls queued
while it was busy as one batch, their writes in one transaction.

Many runs start and end at the same moment under load; one transaction (and one WAL append)
for all the records that came in meanwhile costs about what one record did, and the callers of
a batch are woken by one hop back to each event loop instead of one per call.

What a caller can count on is what it could count on with a transaction per call:

- ``call()`` resolves only once its write has been committed: a record is durable (it survives
  the process being killed) when the store's ``create()`` or ``save()`` returns.
- A call that fails gets its own error: a duplicate run id (an ``IntegrityError`` undoes only
  its own statement) does not fail the other writes of its batch. An error that ends the whole
  transaction (a full disk, an I/O error) fails every write of it that had not been committed.
- Calls from one event loop run in the order they were made. Reads run after the batch's writes
  are committed, each on its own: a read never waits for the write lock of another process.
- A call runs once it is queued, even if its caller is cancelled meanwhile (a record that was
  handed over lands), as a call already running in a thread pool did.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

__all__: list[str] = []  # internal: used by _store_sqlite

T = TypeVar("T")

#: At most this many writes share a transaction (a bound on how long one batch holds the lock).
MAX_BATCH: Final = 256

_Result = tuple[asyncio.Future[Any], bool, Any]


class _Call:
    __slots__ = ("fn", "future", "loop", "write")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], write: bool,
                 loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.write = write
        self.loop = loop
        self.future = future


class _Stop:
    __slots__ = ("call",)

    def __init__(self, call: _Call) -> None:
        self.call = call


class SqliteBatcher:
    """The thread that owns one sqlite connection (made by ``connect`` on that thread, when
    first needed). ``wrap`` turns a ``sqlite3.Error`` into the error the caller gets."""

    def __init__(self, connect: Callable[[], sqlite3.Connection],
                 wrap: Callable[[sqlite3.Error], Exception], name: str) -> None:
        self._connect = connect
        self._wrap = wrap
        self._name = name
        self._queue: queue.SimpleQueue[_Call | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def call(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True
             ) -> asyncio.Future[T]:
        """Queue ``fn(connection)``; the future resolves when its batch is done (committed,
        for a write). ``write=False``: ``fn`` only reads."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._ensure_thread()
        self._queue.put(_Call(fn, write, loop, future))
        return future

    async def close(self) -> None:
        """Close the connection and end the thread, after the calls queued before."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Stop(_Call(lambda conn: None, False, loop, future)))
        await future

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    # A daemon thread: a store never closed does not keep the process alive;
                    # what its callers were told is saved is committed already.
                    thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                    thread.start()
                    self._thread = thread

    # -- the thread ---------------------------------------------------------------------------
    def _work(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            first = get()
            batch: list[_Call] = []
            stop: _Stop | None = None
            item: _Call | _Stop | None = first
            while item is not None:
                if isinstance(item, _Stop):
                    stop = item
                    break
                batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = get_nowait()
                except queue.Empty:
                    item = None
            if batch:
                self._deliver(self._run(batch))
            # Nothing of this batch is kept while the thread waits for the next one.
            del batch, first, item
            if stop is not None:
                conn, self._conn = self._conn, None
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                self._deliver([(stop.call.future, True, None)], stop.call.loop)
                return

    def _run(self, batch: list[_Call]) -> list[tuple[_Call, bool, Any]]:
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
        except BaseException as exc:  # cannot open the database: every call gets why
            return [(call, False, exc) for call in batch]
        writes = [call for call in batch if call.write]
        done: list[tuple[_Call, bool, Any]] = []
        if len(writes) == 1:
            done.append(self._one(conn, writes[0]))
        elif writes:
            done.extend(self._transaction(conn, writes))
        done.extend(self._one(conn, call) for call in batch if not call.write)
        return done

    def _one(self, conn: sqlite3.Connection, call: _Call) -> tuple[_Call, bool, Any]:
        """One call in its own (implicit) transaction, as before batching."""
        try:
            return call, True, call.fn(conn)
        except sqlite3.Error as exc:
            return call, False, self._wrap(exc)
        except BaseException as exc:
            return call, False, exc

    def _transaction(self, conn: sqlite3.Connection, writes: list[_Call]
                     ) -> list[tuple[_Call, bool, Any]]:
        done: list[tuple[_Call, bool, Any]] = []
        pending: list[tuple[_Call, Any]] = []  # written, not committed yet
        try:
            # IMMEDIATE: the write lock now (waiting busy_timeout for another process's), not
            # halfway through the batch.
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(call, False, self._wrap(exc)) for call in writes]
        for call in writes:
            try:
                pending.append((call, call.fn(conn)))
            except BaseException as exc:
                done.append((call, False, self._wrap(exc) if isinstance(exc, sqlite3.Error)
                             else exc))
                if not conn.in_transaction:
                    # The error ended the transaction (sqlite rolled it back): the writes
                    # before it are undone. Fail them; the rest go in a new transaction.
                    undone = (exc if isinstance(exc, sqlite3.Error) else sqlite3.OperationalError(
                        f"transaction rolled back: {type(exc).__name__}: {exc}"))
                    done.extend((c, False, self._wrap(undone)) for c, _ in pending)
                    pending = []
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                    except sqlite3.Error as again:
                        rest = writes[writes.index(call) + 1:]
                        return done + [(c, False, self._wrap(again)) for c in rest]
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            return done + [(c, False, self._wrap(exc)) for c, _ in pending]
        return done + [(c, True, value) for c, value in pending]

    def _deliver(self, done: list[Any], loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Wake the callers: one hop to each event loop for the whole batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
        if loop is not None:
            by_loop[loop] = done
        else:
            for call, ok, value in done:
                by_loop.setdefault(call.loop, []).append((call.future, ok, value))
        for target, results in by_loop.items():
            # RuntimeError: that loop is closed; nobody waits there any more.
            with contextlib.suppress(RuntimeError):
                target.call_soon_threadsafe(_resolve, results)


def _resolve(results: list[_Result]) -> None:
    for future, ok, value in results:
        if future.done():
            continue  # its caller was cancelled (the call ran all the same)
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
