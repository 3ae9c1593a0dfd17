"""Group commit in the sqlite store (``_sqlite_batch``): the records of many concurrent runs go
in one transaction, and each caller still gets its own answer once its record is committed."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from runstream import RunIdError, RunLog, Runtime, StoreError
from runstream._sqlite_batch import SqliteBatcher
from runstream._store_sqlite import SqliteStore


def _log(run_id: str) -> RunLog:
    return RunLog(run_id=run_id, pipeline="p", parameters={"n": run_id})


def _batcher(db: Path) -> SqliteBatcher:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)")
        return conn

    return SqliteBatcher(connect, lambda exc: StoreError(f"db: {exc}"), "test-sqlite")


async def _held(batcher: SqliteBatcher) -> tuple[threading.Event, asyncio.Future[None]]:
    """Keep the batcher's thread busy until the returned event is set: what is queued
    meanwhile goes in one batch."""
    busy, release = threading.Event(), threading.Event()

    def hold(_conn: sqlite3.Connection) -> None:
        busy.set()
        release.wait(10)

    first = batcher.call(hold, write=False)
    assert await asyncio.to_thread(busy.wait, 10)
    return release, first


async def test_concurrent_runs_records_all_land(tmp_path: Path) -> None:
    store = SqliteStore(path=str(tmp_path / "runs.db"))
    logs = [_log(f"g-{i:04d}") for i in range(400)]
    await asyncio.gather(*(store.create(log) for log in logs))
    for log in logs:
        log.status = "completed"
    await asyncio.gather(*(store.save(log) for log in logs))
    runs = await store.list_runs(limit=1000)
    assert len(runs) == 400 and {r.status for r in runs} == {"completed"}
    await store.close()
    # Committed: another connection (another process) reads them all.
    other = sqlite3.connect(tmp_path / "runs.db")
    assert other.execute("SELECT count(*) FROM runs WHERE status = 'completed'").fetchone() == (
        400,)
    other.close()


async def test_a_duplicate_run_id_fails_alone_in_its_batch(tmp_path: Path) -> None:
    store = SqliteStore(path=str(tmp_path / "runs.db"))
    await store.create(_log("taken"))
    batcher = store._batcher
    assert batcher is not None
    release, first = await _held(batcher)
    calls = [asyncio.ensure_future(store.create(_log(run_id)))
             for run_id in ("a", "taken", "b")]
    await asyncio.sleep(0)  # queued behind the held call: one batch
    release.set()
    await first
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], RunIdError) and "already used" in str(results[1])
    assert {r.run_id for r in await store.list_runs()} == {"taken", "a", "b"}
    await store.close()


async def test_an_error_that_ends_the_transaction_fails_what_it_undid(tmp_path: Path) -> None:
    batcher = _batcher(tmp_path / "t.db")
    release, first = await _held(batcher)

    def insert(key: str) -> asyncio.Future[None]:
        return batcher.call(lambda conn: conn.execute("INSERT INTO t VALUES (?)", (key,)) and None)

    def fatal(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")  # as sqlite does on a full disk or an I/O error
        raise sqlite3.OperationalError("disk I/O error")

    calls = [insert("before"), batcher.call(fatal), insert("after")]
    release.set()
    await first
    results = await asyncio.gather(*calls, return_exceptions=True)
    # The write before the error was undone with it: its caller is told, not left believing.
    assert isinstance(results[0], StoreError) and "disk I/O error" in str(results[0])
    assert isinstance(results[1], StoreError)
    assert results[2] is None
    keys = await batcher.call(lambda conn: conn.execute("SELECT k FROM t").fetchall(),
                              write=False)
    assert keys == [("after",)]
    await batcher.close()


async def test_reads_do_not_wait_for_another_process_s_write_lock(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = SqliteStore(path=str(db), busy_timeout_ms=10_000)
    await store.create(_log("r-1"))
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        async with asyncio.timeout(5):
            assert (await store.get("r-1")).run_id == "r-1"
            assert [r.run_id for r in await store.list_runs()] == ["r-1"]
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    await store.close()


async def test_a_closed_store_opens_again_when_used(tmp_path: Path) -> None:
    store = SqliteStore(path=str(tmp_path / "runs.db"))
    await store.create(_log("c-1"))
    await store.close()
    await store.close()  # twice is fine
    await store.create(_log("c-2"))
    assert {r.run_id for r in await store.list_runs()} == {"c-1", "c-2"}
    await store.close()


async def test_a_cancelled_caller_s_record_still_lands(tmp_path: Path) -> None:
    store = SqliteStore(path=str(tmp_path / "runs.db"))
    await store.create(_log("warm"))
    batcher = store._batcher
    assert batcher is not None
    release, first = await _held(batcher)
    call = asyncio.ensure_future(store.create(_log("handed-over")))
    await asyncio.sleep(0)
    call.cancel()
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await call
    assert (await store.get("handed-over")).run_id == "handed-over"
    await store.close()


# A process that starts 40 runs that never end and completes 40 others, all at once (their
# records share transactions), says so once every execute() has returned, then waits.
KILLED = textwrap.dedent("""
    import asyncio
    from runstream import AsyncPipeline, Runtime
    from runstream_async_python import AsyncPythonTask

    async def main():
        started = asyncio.Event()
        count = 0

        async def forever():
            nonlocal count
            count += 1
            if count == 40:
                started.set()
            await asyncio.sleep(3600)

        async def quick():
            return None

        runtime = Runtime()
        await runtime.start()
        hang = AsyncPipeline("hang", [AsyncPythonTask(name="s", function=forever)])
        done = AsyncPipeline("done", [AsyncPythonTask(name="s", function=quick)])
        hanging = [asyncio.ensure_future(hang.execute(run_id=f"hang-{i}", config=runtime))
                   for i in range(40)]
        await asyncio.gather(*(done.execute(run_id=f"done-{i}", config=runtime)
                               for i in range(40)))
        await started.wait()  # each run's start is recorded before its step runs
        print("saved", flush=True)
        await asyncio.gather(*hanging)

    asyncio.run(main())
""")


async def test_records_saved_before_a_kill_survive_it(in_tmp_cwd: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILLED], cwd=in_tmp_cwd,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "saved"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    runtime = Runtime()  # same cwd: the same sqlite database
    try:
        runs = {r.run_id: r.status for r in await runtime.store.list_runs(limit=1000)}
        assert runs == {**{f"done-{i}": "completed" for i in range(40)},
                        **{f"hang-{i}": "running" for i in range(40)}}
        assert sorted(await runtime.recover_abandoned()) == sorted(f"hang-{i}"
                                                                   for i in range(40))
        assert {(await runtime.store.get(f"hang-{i}")).status for i in range(40)} == {
            "abandoned"}
    finally:
        await runtime.aclose()
