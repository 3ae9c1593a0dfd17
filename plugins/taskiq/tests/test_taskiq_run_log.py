"""The run log a caller gets for a run on a worker: ``execute()``, ``RunHandle.run_log`` and
``result()`` give the worker's own record (its steps, its process), as the store holds it; a run
that a transport created in the event log first (runstream-sse streams it, reading only its
end) ends without reading the record back from the store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runstream import AsyncPipeline, RunFailedError, RunLog, Runtime
from runstream_postgres import PostgresStore

from ._taskiq_cluster import Shared, workers
from .taskiq_pipelines import failing_pipeline, slow_pipeline


def referenced(make: Any = slow_pipeline, ref: str = "taskiq_pipelines:slow_pipeline"
               ) -> AsyncPipeline:
    pipeline: AsyncPipeline = make()
    pipeline.ref = ref  # the workers import it by this name (their PYTHONPATH has tests/)
    return pipeline


def failing() -> AsyncPipeline:
    return referenced(failing_pipeline, "taskiq_pipelines:failing_pipeline")


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The run ids this process reads from the store (``get``)."""
    seen: list[str] = []
    original = PostgresStore.get

    async def get(self: PostgresStore, run_id: str) -> RunLog:
        seen.append(run_id)
        return await original(self, run_id)

    monkeypatch.setattr(PostgresStore, "get", get)
    yield seen


def whole(log: RunLog) -> dict[str, Any]:
    return log.model_dump(mode="json")


async def test_execute_and_a_handle_give_the_workers_run_log(
        shared: Shared, tmp_path: Path, reads: list[str]) -> None:
    config = shared.config(tmp_path)
    with workers(shared, config, tmp_path, 1):
        async with Runtime(config) as runtime:
            log = await referenced().execute({"count": 2, "interval": 0}, config=runtime,
                                             run_id="executed")
            stored = await runtime.store.get("executed")
            assert whole(log) == whole(stored)
            assert log.steps["ticks"].status == "completed"  # the worker's steps
            assert log.process is not None
            assert log.process.split(":")[1] != str(os.getpid())  # it ran in the worker

            handle = referenced().stream({"count": 2, "interval": 0}, config=runtime,
                                         run_id="handled")
            assert [e.type async for e in handle][-1] == "run.completed"
            stored = await runtime.store.get("handled")
            assert whole(handle.run_log) == whole(stored)
            assert whole(await handle.result()) == whole(stored)

            with pytest.raises(RunFailedError) as failed:
                await failing().execute(config=runtime, run_id="failed")
            stored = await runtime.store.get("failed")
            assert whole(failed.value.run_log) == whole(stored)
            assert stored.steps["boom"].status == "failed"
    assert reads.count("executed") == 2 and reads.count("handled") == 2  # ours, then the test's


async def test_a_run_a_transport_streams_ends_without_reading_its_record_back(
        shared: Shared, tmp_path: Path, reads: list[str]) -> None:
    """As runstream-sse does: the run is created in the event log, then started; the
    transport reads the handle's status only. What the store holds is the worker's record."""
    config = shared.config(tmp_path)
    with workers(shared, config, tmp_path, 1):
        async with Runtime(config) as runtime:
            await runtime.event_log.create("sse-done", pipeline="slow", owner="alice")
            handle = referenced().stream({"count": 2, "interval": 0}, config=runtime,
                                         run_id="sse-done", owner="alice")
            types = [e.type async for e in handle]
            assert types[-1] == "run.completed"
            assert handle.run_log.status == "completed" and handle.run_log.ended is not None
            assert handle.run_log.error is None

            await runtime.event_log.create("sse-failed", pipeline="fails", owner="alice")
            handle = failing().stream({"message": "no luck"}, config=runtime,
                                      run_id="sse-failed", owner="alice")
            assert [e.type async for e in handle][-1] == "run.failed"
            error = handle.run_log.error
            assert handle.run_log.status == "failed" and error is not None
            assert (error.type, error.message, error.step) == ("ValueError", "no luck", "boom")
            assert reads == []  # neither run log was read back

            done, failed = [await runtime.store.get(i) for i in ("sse-done", "sse-failed")]
            assert done.status == "completed" and done.steps["ticks"].status == "completed"
            assert failed.status == "failed" and failed.error is not None
            info = await runtime.event_log.get_run("sse-done")
            assert info is not None and info.status == "completed"


async def test_a_run_whose_id_says_it_is_logged_is_taken_over_without_round_trips(
        shared: Shared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``logged_run_id`` (runstream-sse's runs): the run its caller created in the event log
    is taken over as it is, with no second ``create`` nor ``get_run``; a plain id still is
    checked (a refused create, then a read)."""
    from runstream import logged_run_id, new_run_id
    from runstream_redis import RedisEventLog

    calls: list[str] = []
    create, get_run = RedisEventLog.create, RedisEventLog.get_run

    async def counting_create(self: RedisEventLog, run_id: str, **kw: Any) -> None:
        calls.append(f"create {run_id}")
        await create(self, run_id, **kw)

    async def counting_get_run(self: RedisEventLog, run_id: str) -> Any:
        calls.append(f"get_run {run_id}")
        return await get_run(self, run_id)

    monkeypatch.setattr(RedisEventLog, "create", counting_create)
    monkeypatch.setattr(RedisEventLog, "get_run", counting_get_run)
    config = shared.config(tmp_path)
    with workers(shared, config, tmp_path, 1):
        async with Runtime(config) as runtime:
            for run_id, mark in ((new_run_id(), True), ("plain-logged-1", True),
                                 ("plain-1", False)):
                await runtime.event_log.create(run_id, pipeline="slow", owner="alice")
                calls.clear()
                handle = referenced().stream(
                    {"count": 2, "interval": 0}, config=runtime, owner="alice",
                    run_id=logged_run_id(run_id) if mark else run_id)
                assert [e.type async for e in handle][-1] == "run.completed"
                assert handle.run_id == run_id
                if mark:
                    assert calls == []
                else:
                    assert calls == [f"create {run_id}", f"get_run {run_id}"]
                stored = await runtime.store.get(run_id)
                assert stored.status == "completed" and stored.owner == "alice"
