"""Run log stores: sqlite (default), file-system and memory behave the same: each runs the
store contract suite (runstream.testing.RunLogStoreContract), as plugins' stores do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from runstream import RunLog, RunLogStore, RunNotFoundError
from runstream._store_fs import FileSystemStore
from runstream._store_memory import MemoryStore
from runstream._store_sqlite import SqliteStore
from runstream.testing import RunLogStoreContract


class TestMemoryStore(RunLogStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[RunLogStore]:
        s = MemoryStore()
        yield s
        await s.close()


class TestFileSystemStore(RunLogStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[RunLogStore]:
        s = FileSystemStore(path=str(tmp_path / "runs"))
        yield s
        await s.close()

    @pytest.fixture
    async def store_twin(self, tmp_path: Path) -> AsyncIterator[RunLogStore]:
        s = FileSystemStore(path=str(tmp_path / "runs"))
        yield s
        await s.close()


class TestSqliteStore(RunLogStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[RunLogStore]:
        s = SqliteStore(path=str(tmp_path / "runs.db"))
        yield s
        await s.close()

    @pytest.fixture
    async def store_twin(self, tmp_path: Path) -> AsyncIterator[RunLogStore]:
        s = SqliteStore(path=str(tmp_path / "runs.db"))  # another connection, as a process's
        yield s
        await s.close()


def make(run_id: str, minutes: int = 0, status: str = "running") -> RunLog:
    return RunLog(run_id=run_id, pipeline="p", status=status,  # type: ignore[arg-type]
                  parameters={"prompt": f"hi {run_id}", "obj": {"x": [1, 2]}},
                  started=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes))


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


async def test_sqlite_page_cache_is_small_and_configurable(tmp_path: Path) -> None:
    """A process's store connection keeps 256 KiB of pages by default, not SQLite's 2,000."""
    for store, kib in ((SqliteStore(path=str(tmp_path / "a.db")), 256),
                       (SqliteStore(path=str(tmp_path / "b.db"), cache_kib=4096), 4096)):
        await store.create(make("r-1", minutes=0))
        pragma = await store._call(
            lambda conn: conn.execute("PRAGMA cache_size").fetchone()[0], write=False)
        assert pragma == -kib
        await store.close()
    with pytest.raises(ValidationError):
        SqliteStore(path=str(tmp_path / "c.db"), cache_kib=0)


async def test_unserialisable_parameters_are_kept_as_repr(tmp_path: Path) -> None:
    s = SqliteStore(path=str(tmp_path / "r.db"))
    log = make("obj")
    log.parameters = {"thing": object()}
    await s.create(log)
    assert (await s.get("obj")).parameters["thing"].startswith("<object object")
    await s.close()
