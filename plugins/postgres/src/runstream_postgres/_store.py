"""``postgres`` run log store: run logs in PostgreSQL, shared by every process and machine."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolClosed
from pydantic import Field, PrivateAttr, field_validator
from runstream import (
    ConfigError,
    RunIdError,
    RunLog,
    RunLogStore,
    RunNotFoundError,
    RunStatus,
    RunSummary,
    StoreError,
    validate_run_id,
)

from ._dsn import mask_dsn, redact
from ._loop import LoopThread
from ._schema import NewerSchemaError, migrate

__all__ = ["PostgresStore"]

logger = logging.getLogger("runstream.postgres")

T = TypeVar("T")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PostgresStore(RunLogStore):
    """Run logs in a PostgreSQL database, through a pool of psycopg 3 connections opened on
    first use. Safe for many concurrent runs and for any number of processes and machines
    sharing the database; keeps process leases.

    ``run_log_store: {type: postgres, dsn: "postgresql://user:password@host:5432/db"}``
    """

    dsn: str = Field(repr=False, description=(
        "libpq connection string: a URI (postgresql://user:password@host:5432/db) or "
        "key=value pairs; unset parts come from the PG* environment variables, as in psql."))
    schema_name: str = Field(default="public", description=(
        "Schema of the store's tables (runstream_runs, runstream_leases, runstream_schema); "
        "created if missing."))
    min_size: int = Field(default=1, ge=0, le=1000,
                          description="Connections the pool keeps open.")
    max_size: int = Field(default=10, ge=1, le=1000,
                          description="Most connections the pool opens.")
    connect_timeout: float = Field(default=5.0, gt=0, le=3600, description=(
        "Seconds to wait for a connection (to open one, or for a free one in the pool) "
        "before the store call fails with StoreError."))

    command_timeout: float = Field(default=30.0, gt=0, le=86_400, description=(
        "Seconds a store call may take in all (waiting for a connection included) before it "
        "fails with StoreError."))

    # Raised as ConfigError itself, not ValueError: pydantic would quote the value, password
    # included, in its message.
    @field_validator("dsn")
    @classmethod
    def _dsn_is_readable(cls, value: str) -> str:
        try:
            psycopg.conninfo.conninfo_to_dict(value)
        except psycopg.Error as exc:
            raise ConfigError(f"run_log_store.dsn {mask_dsn(value)!r} is not a PostgreSQL "
                              f"connection string: {redact(str(exc), value)}") from None
        return value

    @field_validator("schema_name")
    @classmethod
    def _schema_is_an_identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("use 1-63 letters, digits or '_', not starting with a digit")
        return value

    _pool: AsyncConnectionPool[Conn] | None = PrivateAttr(default=None)
    # The pool lives in an event loop of the store's own (see _loop): every call runs there.
    _thread: LoopThread = PrivateAttr(default_factory=lambda: LoopThread("runstream-postgres"))
    _opening: asyncio.Lock | None = PrivateAttr(default=None)
    _failed: tuple[float, str] | None = PrivateAttr(default=None)  # (monotonic, message)
    _closing: set[asyncio.Task[None]] = PrivateAttr(default_factory=set)  # pools given up

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "dsn": mask_dsn(self.dsn)}

    # -- connections (in the store's loop) -----------------------------------------------------
    def _where(self) -> str:
        return f"run log database {mask_dsn(self.dsn)}"

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        detail = redact(str(exc).strip() or type(exc).__name__, self.dsn)
        return StoreError(f"{self._where()}: {doing}: {detail}")

    async def _get_pool(self) -> AsyncConnectionPool[Conn]:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        asked = time.monotonic()
        async with self._opening:
            if self._pool is None:
                failed = self._failed
                if failed is not None and failed[0] >= asked:
                    # It failed while this call waited for the lock: the same answer, at once,
                    # not one more connect_timeout per waiting call.
                    raise StoreError(failed[1])
                try:
                    self._pool = await self._open()
                except StoreError as exc:
                    self._failed = (time.monotonic(), str(exc))
                    raise
            return self._pool

    async def _open(self) -> AsyncConnectionPool[Conn]:
        """Create or migrate the tables on one connection of our own (its error says why the
        database is out of reach), then start the pool."""
        try:
            async with asyncio.timeout(self.connect_timeout * 2):
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn, connect_timeout=max(1, round(self.connect_timeout)),
                    autocommit=True)
                async with conn:
                    await migrate(conn, self.schema_name)
        except NewerSchemaError as exc:
            raise StoreError(f"{self._where()}: {exc}") from None
        except TimeoutError:
            raise StoreError(f"{self._where()}: cannot connect: no answer within "
                             f"{self.connect_timeout} s") from None
        except psycopg.Error as exc:
            raise self._error(exc, "cannot connect") from None
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.dsn, min_size=self.min_size, max_size=max(self.max_size, self.min_size),
            timeout=self.connect_timeout, open=False, name="runstream-postgres",
            # No check as a connection is handed out (one more round trip per call): a call
            # that finds its connection dead is retried once instead (see _run_here).
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self.connect_timeout))})
        await pool.open(wait=False)
        return pool

    async def _attempt(self, doing: str, fn: Callable[[Conn], Awaitable[T]], *,
                       last: bool) -> T:
        """``fn`` on a connection of the pool. A dead connection or a pool given up meanwhile
        raises ``_DeadConnection`` (unless ``last``); any connection-level failure gives the
        pool up (see :meth:`_drop`); every failure else is a StoreError naming the database."""
        pool = await self._get_pool()
        dead = False
        try:
            async with pool.connection() as conn:
                try:
                    return await fn(conn)
                except psycopg.OperationalError:
                    dead = conn.closed
                    raise
        except PoolClosed:
            # Another call gave this pool up (its connection was dead) while this one waited
            # for a connection of it: the call has not started; it goes to the new pool.
            if last:
                raise self._error(PoolClosed("the pool was closed"), doing) from None
            raise _DeadConnection from None
        except psycopg.OperationalError as exc:
            self._drop(pool)
            if dead and not last:
                raise _DeadConnection from None
            raise self._error(exc, doing) from None
        except psycopg.Error as exc:
            raise self._error(exc, doing) from None

    def _drop(self, pool: AsyncConnectionPool[Conn]) -> None:
        """Give up ``pool`` after a connection-level failure (the server gone, restarted, not
        answering): the next call opens a new one, at once if the server is back. The pool's
        own reconnection waits longer and longer between attempts (up to minutes, after a long
        outage); a new pool does not wait."""
        if self._pool is pool:
            self._pool = None
            closing = asyncio.get_running_loop().create_task(pool.close(timeout=1))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _run(self, doing: str, fn: Callable[[Conn], Awaitable[T]],
                   again: Callable[[Conn], Awaitable[T]] | None = None) -> T:
        """``fn`` on a connection, in the store's loop; ``again`` (default: ``fn``) is what a
        retry runs (see :meth:`_run_here`)."""
        return await self._thread.run(self._run_here(doing, fn, again or fn))

    async def _run_here(self, doing: str, fn: Callable[[Conn], Awaitable[T]],
                        again: Callable[[Conn], Awaitable[T]]) -> T:
        # Bounded as a whole: a server that vanished without closing the connection (a host
        # gone, a network partition) would otherwise keep a call waiting on TCP for minutes.
        try:
            async with asyncio.timeout(self.command_timeout):
                try:
                    return await self._attempt(doing, fn, last=False)
                except _DeadConnection:
                    # Its connection was dead (closed by a server restart while it sat in the
                    # pool, or lost mid-call): once more, on a new pool's connection. Whether
                    # the server applied the first attempt is unknown, so a retry must give
                    # the same answer either way: ``again`` does (see create, save_if).
                    return await self._attempt(doing, again, last=True)
        except TimeoutError:
            if self._pool is not None:
                self._drop(self._pool)  # its connection may be stuck on a dead socket
            raise StoreError(f"{self._where()}: {doing}: no answer within "
                             f"{self.command_timeout} s") from None

    def _q(self, statement: LiteralString) -> sql.Composed:
        return sql.SQL(statement).format(s=sql.Identifier(self.schema_name))

    # -- the store contract --------------------------------------------------------------------
    async def create(self, run_log: RunLog) -> None:
        query = self._q("INSERT INTO {s}.runstream_runs "
                        "(run_id, pipeline, status, started, ended, process, log) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING")
        row = _row(run_log)

        async def insert(conn: Conn) -> int:
            return (await conn.execute(query, row)).rowcount

        async def insert_again(conn: Conn) -> int:
            # Once more after a dead connection, the first attempt may have written the row:
            # a row that holds this very run log is ours (a no-op update counts it), any
            # other is a taken id. Only then: a second create() of the same log must fail.
            again = self._q("INSERT INTO {s}.runstream_runs "
                            "(run_id, pipeline, status, started, ended, process, log) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) "
                            "DO UPDATE SET log = EXCLUDED.log "
                            "WHERE runstream_runs.log = EXCLUDED.log")
            return (await conn.execute(again, row)).rowcount

        if await self._run(f"recording run {run_log.run_id}", insert, insert_again) == 0:
            raise RunIdError(f"run id '{run_log.run_id}' is already used; "
                             "pick another or omit it")

    async def save(self, run_log: RunLog) -> None:
        # An upsert: a record is never lost because its start did not land.
        query = self._q("INSERT INTO {s}.runstream_runs "
                        "(run_id, pipeline, status, started, ended, process, log) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE "
                        "SET status = EXCLUDED.status, ended = EXCLUDED.ended, "
                        "log = EXCLUDED.log")
        row = _row(run_log)

        async def upsert(conn: Conn) -> None:
            await conn.execute(query, row)

        await self._run(f"saving run {run_log.run_id}", upsert)

    async def save_if(self, run_log: RunLog, *, status: RunStatus) -> bool:
        query = self._q("UPDATE {s}.runstream_runs SET status = %s, ended = %s, log = %s "
                        "WHERE run_id = %s AND status = %s")
        log = run_log.to_json()
        args = (run_log.status, run_log.ended, log, run_log.run_id, status)
        async def update(conn: Conn) -> bool:
            return (await conn.execute(query, args)).rowcount == 1

        async def update_again(conn: Conn) -> bool:
            # Once more after a dead connection, the first attempt may have applied: the row
            # then holds this very run log, and the save happened.
            again = self._q("UPDATE {s}.runstream_runs SET status = %s, ended = %s, log = %s "
                            "WHERE run_id = %s AND (status = %s OR log = %s)")
            return (await conn.execute(again, (*args, log))).rowcount == 1

        return await self._run(f"saving run {run_log.run_id}", update, update_again)

    async def get(self, run_id: str) -> RunLog:
        try:
            validate_run_id(run_id)
        except RunIdError:
            raise RunNotFoundError(f"no run '{run_id}': not a valid run id") from None
        query = self._q("SELECT log FROM {s}.runstream_runs WHERE run_id = %s")

        async def select(conn: Conn) -> Any:
            return await (await conn.execute(query, (run_id,))).fetchone()

        row = await self._run(f"reading run {run_id}", select)
        if row is None:
            raise RunNotFoundError(f"no run '{run_id}' in the postgres run log store")
        return RunLog.model_validate_json(row[0])

    async def list_runs(self, *, limit: int = 50, status: RunStatus | None = None
                        ) -> list[RunSummary]:
        query, args = self._list_query(limit, status)

        async def select(conn: Conn) -> list[Any]:
            return await (await conn.execute(query, args)).fetchall()

        rows = await self._run("listing runs", select)
        return [RunSummary(run_id=r[0], pipeline=r[1], status=r[2], started=r[3], ended=r[4])
                for r in rows]

    def _list_query(self, limit: int, status: RunStatus | None
                    ) -> tuple[sql.Composed, tuple[Any, ...]]:
        # Served by the runstream_runs_started / runstream_runs_status indexes: the newest
        # `limit` rows are read from the index, never the whole table.
        where = self._q(" WHERE status = %s") if status is not None else sql.SQL("")
        query = sql.SQL("{select}{where} ORDER BY started DESC LIMIT %s").format(
            select=self._q("SELECT run_id, pipeline, status, started, ended "
                           "FROM {s}.runstream_runs"), where=where)
        return query, ((status, limit) if status is not None else (limit,))

    async def renew_lease(self, process: str, until: datetime) -> bool:
        upsert = self._q("INSERT INTO {s}.runstream_leases (process, until) VALUES (%s, %s) "
                         "ON CONFLICT (process) DO UPDATE SET until = EXCLUDED.until")
        # Leases that ran out a day ago are of no use to anyone: the table stays small.
        prune = self._q("DELETE FROM {s}.runstream_leases WHERE until < %s")

        async def renew(conn: Conn) -> None:
            await conn.execute(upsert, (_text(process), until))
            await conn.execute(prune, (until - timedelta(days=1),))

        await self._run("renewing this process's lease", renew)
        return True

    async def leases(self) -> dict[str, datetime] | None:
        query = self._q("SELECT process, until FROM {s}.runstream_leases")

        async def select(conn: Conn) -> list[Any]:
            return await (await conn.execute(query)).fetchall()

        return {process: until for process, until in await self._run("reading leases", select)}

    async def close(self) -> None:
        pool, self._pool, self._opening = self._pool, None, None

        async def close_pools() -> None:
            if pool is not None:
                await pool.close()
            if self._closing:
                await asyncio.wait(self._closing)

        await self._thread.stop(close_pools())


class _DeadConnection(Exception):
    """A call failed because its connection was dead: it may be retried on a new one."""


def _text(value: str) -> str:
    """``value`` as a text column can hold it: no NUL (PostgreSQL refuses it in text) and no
    lone surrogate (not UTF-8); U+FFFD stands for either. The run log's JSON keeps the exact
    value, escaped."""
    value = value.replace("\0", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _row(run_log: RunLog) -> tuple[Any, ...]:
    return (run_log.run_id, _text(run_log.pipeline), run_log.status, run_log.started,
            run_log.ended, _text(run_log.process) if run_log.process else None,
            run_log.to_json())
