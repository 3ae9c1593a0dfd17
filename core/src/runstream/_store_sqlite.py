"""``sqlite`` run log store (the default): one embedded database file in WAL mode."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, PrivateAttr, field_validator

from ._errors import RunIdError, RunNotFoundError, StoreError
from ._runlog import RunLog, RunStatus, RunSummary, validate_run_id
from ._sqlite_batch import SqliteBatcher
from ._store import RunLogStore, dump_run_log
from ._validation import check_store_path

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id   TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    status   TEXT NOT NULL,
    started  TEXT NOT NULL,
    ended    TEXT,
    log      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, started);
CREATE TABLE IF NOT EXISTS leases (
    process TEXT PRIMARY KEY,
    until   TEXT NOT NULL
);
"""


def _use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the database in WAL mode (kept in the file: done once per database). Switching is
    refused with "database is locked", without sqlite's busy handler, while another process
    opens the same new database: retried here, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)  # as sqlite's own busy handler does: no event to wait for


class SqliteStore(RunLogStore):
    """Run logs in one SQLite database. Safe for many concurrent runs (one writer thread, WAL)
    and for several processes sharing the file (WAL + busy timeout). The records that concurrent
    runs hand over while a write is under way are committed together, in one transaction
    (group commit, ``_sqlite_batch``); each ``create()`` and ``save()`` returns once its own
    record is committed, as with a transaction per record."""

    path: str = Field(default=".runstream/runstream.db", description="Database file.")
    busy_timeout_ms: int = Field(
        default=5000, ge=0, le=2**31 - 1,
        description="How long a write waits for another process's lock before failing.")
    cache_kib: int = Field(
        default=256, ge=16, le=2**20,
        description="SQLite's page cache for the store's connection, in KiB (SQLite's own "
                    "default is 2,000). The store mostly appends (run ids and start times "
                    "grow) and reads single runs or the newest ones: a small cache costs no "
                    "measurable speed and keeps each process's memory down; raise it for "
                    "reads over many old runs.")

    _path_is_a_file = field_validator("path")(partial(check_store_path, directory=False))

    # All access goes through one thread that owns the connection: writes from concurrent runs
    # are serialised (and batched) without blocking the event loop, and sqlite never sees two
    # threads.
    _batcher: SqliteBatcher | None = PrivateAttr(default=None)

    def _connect(self) -> sqlite3.Connection:
        path = Path(self.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level None: no implicit transactions; the batcher begins and commits.
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            _use_wal(conn, self.busy_timeout_ms / 1000)
            # NORMAL in WAL mode: a commit survives the process dying (kill -9), not a power
            # cut; see docs/concepts.md, "What survives a crash".
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA cache_size = -{int(self.cache_kib)}")  # negative: KiB
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the run log database {path}: {exc}") from exc
        return conn

    def _error(self, exc: sqlite3.Error) -> Exception:
        error = StoreError(f"run log database {self.path}: {exc}")
        error.__cause__ = exc
        return error

    def _call(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True
              ) -> asyncio.Future[T]:
        if self._batcher is None:
            self._batcher = SqliteBatcher(self._connect, self._error, "runstream-sqlite")
        return self._batcher.call(fn, write=write)

    async def create(self, run_log: RunLog) -> None:
        await self.create_soon(run_log)

    def create_soon(self, run_log: RunLog) -> asyncio.Future[None]:
        # The writer thread's own future: no task per run.
        row = (run_log.run_id, run_log.pipeline, run_log.status, run_log.started.isoformat(),
               None, dump_run_log(run_log))

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)", row)
            except sqlite3.IntegrityError:
                raise RunIdError(f"run id '{run_log.run_id}' is already used; "
                                 "pick another or omit it") from None

        return self._call(insert)

    async def save(self, run_log: RunLog) -> None:
        row = (run_log.status, run_log.ended.isoformat() if run_log.ended else None,
               dump_run_log(run_log), run_log.run_id)
        def update(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE runs SET status = ?, ended = ?, log = ? WHERE run_id = ?", row)

        await self._call(update)

    async def save_if(self, run_log: RunLog, *, status: RunStatus) -> bool:
        row = (run_log.status, run_log.ended.isoformat() if run_log.ended else None,
               dump_run_log(run_log), run_log.run_id, status)

        def update(conn: sqlite3.Connection) -> bool:
            return conn.execute("UPDATE runs SET status = ?, ended = ?, log = ? "
                                "WHERE run_id = ? AND status = ?", row).rowcount == 1

        return await self._call(update)

    async def get(self, run_id: str) -> RunLog:
        try:
            validate_run_id(run_id)  # sqlite cannot even encode some strings (lone surrogates)
        except RunIdError:
            raise RunNotFoundError(f"no run '{run_id}': not a valid run id") from None

        def select(conn: sqlite3.Connection) -> Any:
            return conn.execute("SELECT log FROM runs WHERE run_id = ?", (run_id,)).fetchone()

        row = await self._call(select, write=False)
        if row is None:
            raise RunNotFoundError(f"no run '{run_id}' in {self.path}")
        return RunLog.model_validate_json(row[0])

    async def list_runs(self, *, limit: int = 50, status: RunStatus | None = None
                        ) -> list[RunSummary]:
        query = "SELECT run_id, pipeline, status, started, ended FROM runs"
        args: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        query += " ORDER BY started DESC LIMIT ?"
        rows = await self._call(lambda conn: conn.execute(query, (*args, limit)).fetchall(),
                                write=False)
        return [RunSummary(run_id=r[0], pipeline=r[1], status=r[2], started=r[3], ended=r[4])
                for r in rows]

    async def renew_lease(self, process: str, until: datetime) -> bool:
        # Leases that ran out a day ago are of no use to anyone: the table stays small.
        stale = (until - timedelta(days=1)).isoformat()

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO leases VALUES (?, ?)",
                         (process, until.isoformat()))
            conn.execute("DELETE FROM leases WHERE until < ?", (stale,))

        await self._call(upsert)
        return True

    async def leases(self) -> dict[str, datetime] | None:
        rows = await self._call(
            lambda conn: conn.execute("SELECT process, until FROM leases").fetchall(),
            write=False)
        return {process: datetime.fromisoformat(until) for process, until in rows}

    async def close(self) -> None:
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await batcher.close()
