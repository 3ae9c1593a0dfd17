"""Run log stores: sqlite (default), file-system and memory behave the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from runstream import RunIdError, RunLog, RunLogStore, RunNotFoundError, StepLog
from runstream._store_fs import FileSystemStore
from runstream._store_memory import MemoryStore
from runstream._store_sqlite import SqliteStore


@pytest.fixture(params=["sqlite", "file-system", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunLogStore]:
    s: RunLogStore
    if request.param == "sqlite":
        s = SqliteStore(path=str(tmp_path / "runs.db"))
    elif request.param == "file-system":
        s = FileSystemStore(path=str(tmp_path / "runs"))
    else:
        s = MemoryStore()
    yield s
    await s.close()


def make(run_id: str, minutes: int = 0, status: str = "running") -> RunLog:
    return RunLog(run_id=run_id, pipeline="p", status=status,  # type: ignore[arg-type]
                  parameters={"prompt": f"hi {run_id}", "obj": {"x": [1, 2]}},
                  started=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes))


async def test_create_save_get(store: RunLogStore) -> None:
    log = make("r1")
    await store.create(log)
    assert (await store.get("r1")).status == "running"
    log.status = "completed"
    log.steps["a"] = StepLog(name="a", status="completed")
    await store.save(log)
    got = await store.get("r1")
    assert got.status == "completed" and got.steps["a"].status == "completed"
    assert got.parameters == {"prompt": "hi r1", "obj": {"x": [1, 2]}}


async def test_duplicate_run_id_refused_without_overwriting(store: RunLogStore) -> None:
    await store.create(make("dup"))
    other = make("dup")
    other.parameters = {"prompt": "second"}
    with pytest.raises(RunIdError, match="already used"):
        await store.create(other)
    assert (await store.get("dup")).parameters["prompt"] == "hi dup"


async def test_unknown_run(store: RunLogStore) -> None:
    with pytest.raises(RunNotFoundError):
        await store.get("nope")


async def test_list_newest_first_with_status_filter(store: RunLogStore) -> None:
    for i in range(30):
        await store.create(make(f"run-{i:02d}", minutes=i,
                                status="completed" if i % 2 else "failed"))
    listed = await store.list_runs(limit=5)
    assert [s.run_id for s in listed] == [f"run-{i:02d}" for i in range(29, 24, -1)]
    failed = await store.list_runs(limit=100, status="failed")
    assert len(failed) == 15 and all(s.status == "failed" for s in failed)


async def test_concurrent_writes(store: RunLogStore) -> None:
    logs = [make(f"c-{i}") for i in range(100)]
    await asyncio.gather(*(store.create(log) for log in logs))
    for log in logs:
        log.status = "completed"
    await asyncio.gather(*(store.save(log) for log in logs))
    listed = await store.list_runs(limit=1000, status="completed")
    assert len(listed) == 100


async def test_memory_store_is_bounded() -> None:
    s = MemoryStore(max_runs=10)
    for i in range(25):
        await s.create(make(f"m-{i}", status="completed"))
    assert len(await s.list_runs(limit=100)) == 10
    await s.get("m-24")
    with pytest.raises(RunNotFoundError):
        await s.get("m-0")


async def test_file_store_writes_whole_json_files(tmp_path: Path) -> None:
    s = FileSystemStore(path=str(tmp_path))
    await s.create(make("fs-1"))
    assert [p.name for p in tmp_path.iterdir()] == ["fs-1.json"]  # no temp files left
    RunLog.model_validate_json((tmp_path / "fs-1.json").read_text())


async def test_sqlite_lists_thousands_quickly_and_uses_wal(tmp_path: Path) -> None:
    s = SqliteStore(path=str(tmp_path / "big.db"))
    await asyncio.gather(*(s.create(make(f"b-{i:05d}", minutes=i)) for i in range(3000)))
    listed = await s.list_runs(limit=50)
    assert listed[0].run_id == "b-02999" and len(listed) == 50
    import sqlite3

    mode = sqlite3.connect(tmp_path / "big.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    await s.close()


async def test_unserialisable_parameters_are_kept_as_repr(tmp_path: Path) -> None:
    s = SqliteStore(path=str(tmp_path / "r.db"))
    log = make("obj")
    log.parameters = {"thing": object()}
    await s.create(log)
    assert (await s.get("obj")).parameters["thing"].startswith("<object object")
    await s.close()
