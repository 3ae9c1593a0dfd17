"""A failing or slow run log store never costs a run its events, and never loses its record."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from pydantic import PrivateAttr
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    Limits,
    RunLog,
    Runtime,
    StoreError,
    hookimpl,
)
from runstream._store_memory import MemoryStore
from runstream_async_python import AsyncPythonTask

from tests._nodes_util import runstream_tasks


async def words() -> AsyncGenerator[dict[str, Any], None]:
    for w in ["a", "b", "c"]:
        await asyncio.sleep(0.01)
        yield {"type": "chunk", "text": w}


PIPELINE = AsyncPipeline("p", [AsyncPythonTask(name="llm", function=words)])


async def test_locked_sqlite_store_the_run_streams_and_reports(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "runs.db"
    cfg = Config(run_log_store=ComponentConfig(type="sqlite", path=str(db), busy_timeout_ms=50))
    runtime = Runtime(cfg)
    await runtime.recover_abandoned()  # creates the schema while the database is free
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.INFO, logger="runstream"):
            # No run id given: a fresh random one needs no confirmation from the store (a given
            # one would be refused while the store cannot confirm it, see test_run_ids.py).
            handle = PIPELINE.stream(parameters={"prompt": "private words"}, config=runtime)
            events = [e async for e in handle]
        data = [e.data for e in events if e.type == "step.event"]
        assert [d["text"] for d in data] == ["a", "b", "c"]
        warnings = [e for e in events if e.type == "run.warning"]
        assert len(warnings) == 1 and "StoreError" in warnings[0].data["message"]
        assert events[-1].type == "run.completed"
        assert any("failed to save" in w for w in events[-1].data["warnings"])
        # What the client reads names no server path; the server log has the details.
        assert not any(str(tmp_path) in e.model_dump_json() for e in events)
        run_id = handle.run_id
        logged = [r.getMessage() for r in caplog.records if run_id in r.getMessage()]
        assert any("database is locked" in m for m in logged)
        # ... and never the run's parameters (issue 10, item 7).
        assert not any("private words" in r.getMessage() for r in caplog.records)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    # The record is retried in the background until the store takes it: not `running` for
    # ever once the lock is gone (closing the runtime waits for the retries).
    await runtime.aclose()
    check = Runtime(cfg)
    try:
        stored = await check.store.get(run_id)
        assert stored.status == "completed"
        assert stored.parameters == {"prompt": "private words"}
    finally:
        await check.aclose()


async def test_store_that_recovers_gets_the_record_at_the_end(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    cfg = Config(run_log_store=ComponentConfig(type="sqlite", path=str(db), busy_timeout_ms=50))
    runtime = Runtime(cfg)
    await runtime.recover_abandoned()
    locker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")

    async def unlock_then_work() -> AsyncGenerator[dict[str, Any], None]:
        # By now the store has failed to record the start; the database frees up mid-run.
        locker.execute("ROLLBACK")
        yield {"type": "chunk", "text": "x"}

    pipeline = AsyncPipeline("p", [AsyncPythonTask(name="llm", function=unlock_then_work)])
    try:
        log = await pipeline.execute(config=runtime)
        assert log.status == "completed"
        stored = await runtime.store.get(log.run_id)
        assert stored.status == "completed"
        assert "failed to record the run's start (StoreError" in stored.warnings[0]
    finally:
        locker.close()
        await runtime.aclose()


class SlowStore(MemoryStore):
    """Creates take far longer than the run is willing to wait."""

    async def create(self, run_log: RunLog) -> None:
        await asyncio.sleep(30)


class GatedStore(MemoryStore):
    """Records a run's start only once let through (later than the run waits for it)."""

    _gate: asyncio.Event = PrivateAttr(default_factory=asyncio.Event)
    _creates: list[str] = PrivateAttr(default_factory=list)

    async def create(self, run_log: RunLog) -> None:
        try:
            await self._gate.wait()
        except asyncio.CancelledError:
            self._creates.append("cancelled")
            raise
        await super().create(run_log)
        self._creates.append("created")


class BrokenStore(MemoryStore):
    async def create(self, run_log: RunLog) -> None:
        raise StoreError("disk is read-only")

    async def save(self, run_log: RunLog) -> None:
        raise StoreError("disk is read-only")


class RaisingSoonStore(MemoryStore):
    """``create_soon`` raises before it has a future (a bug, or no thread to start)."""

    def create_soon(self, run_log: RunLog) -> asyncio.Future[None]:
        raise StoreError("cannot start the writer thread")


@hookimpl
def register_run_log_stores(register: Any) -> None:
    register("slow", SlowStore)
    register("gated", GatedStore)
    register("broken", BrokenStore)
    register("raising-soon", RaisingSoonStore)


class _Plugin:
    register_run_log_stores = staticmethod(register_run_log_stores)


async def test_slow_store_does_not_hold_the_run_back() -> None:
    cfg = Config(run_log_store=ComponentConfig(type="slow"),
                 limits=Limits(store_timeout=0.05, store_save_timeout=0.1))
    runtime = Runtime(cfg, plugins=[_Plugin()], entry_points=False)
    handle = PIPELINE.stream(config=runtime)
    events = [e async for e in handle]
    assert [e.data["text"] for e in events if e.type == "step.event"] == ["a", "b", "c"]
    warning = next(e for e in events if e.type == "run.warning")
    assert "did not record the run's start within 0.05 s" in warning.data["message"]
    assert events[-1].type == "run.completed"
    assert any("did not save this run within 0.1 s" in w for w in events[-1].data["warnings"])
    # The record is still being saved in the background; closing the runtime ends that too.
    await runtime.aclose()
    assert runstream_tasks() == set()


async def test_a_start_recorded_late_is_recorded_once_not_cancelled() -> None:
    # Past store_timeout the run goes on without its start's record; the store call that
    # records it goes on in the background, and lands (once) when the store answers.
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="gated"),
                             limits=Limits(store_timeout=0.05, store_save_timeout=5)),
                      plugins=[_Plugin()], entry_points=False)
    store = runtime.store
    assert isinstance(store, GatedStore)
    handle = PIPELINE.stream(config=runtime)
    events = []
    async for event in handle:
        events.append(event)
        if event.type == "run.warning":
            store._gate.set()  # the run went on without the record: now the store answers
    assert "did not record the run's start within 0.05 s" in events[1].data["message"]
    assert events[-1].type == "run.completed"
    # Its final record was saved (over the start's) in time: no warning but the start's.
    assert events[-1].data["warnings"] == [events[1].data["message"]]
    assert store._creates == ["created"]
    assert (await store.get(handle.run_id)).status == "completed"
    await runtime.aclose()


async def test_broken_store_execute_still_returns_the_log() -> None:
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="broken"),
                             limits=Limits(store_save_timeout=0.2)),
                      plugins=[_Plugin()], entry_points=False)
    log = await PIPELINE.execute(config=runtime)
    assert log.status == "completed"
    assert len(log.warnings) == 2 and all("StoreError" in w for w in log.warnings)
    await runtime.aclose()


async def test_a_create_soon_that_raises_is_a_start_not_recorded() -> None:
    # The run goes on (its start is written with its end), as when the create fails later.
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="raising-soon")),
                      plugins=[_Plugin()], entry_points=False)
    try:
        handle = PIPELINE.stream(config=runtime)
        events = [e async for e in handle]
        assert [e.data["text"] for e in events if e.type == "step.event"] == ["a", "b", "c"]
        warning = next(e for e in events if e.type == "run.warning")
        assert "failed to record the run's start (StoreError" in warning.data["message"]
        assert events[-1].type == "run.completed"
        assert (await runtime.store.get(handle.run_id)).status == "completed"
    finally:
        await runtime.aclose()
