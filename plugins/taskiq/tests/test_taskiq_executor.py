"""The ``taskiq`` executor with real ``runstream worker`` subprocesses, redis-server and
PostgreSQL: ``execute_streaming()``, ``execute()`` and cancellation in this process, the runs
on the workers."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from runstream import (
    AsyncPipeline,
    ConfigError,
    PipelineDefinitionError,
    RunFailedError,
    Runtime,
)
from runstream.testing import CollectingSink
from runstream_async_python import AsyncPythonTask

from ._taskiq_cluster import Shared, start_worker, workers
from .taskiq_pipelines import slow_pipeline

REF = "taskiq_pipelines:slow_pipeline"


def referenced() -> AsyncPipeline:
    pipeline = slow_pipeline()
    pipeline.ref = REF  # the workers import it by this name (their PYTHONPATH has tests/)
    return pipeline


async def test_a_pipeline_in_a_closure_is_refused_at_submit(shared: Shared,
                                                            tmp_path: Path) -> None:
    async def local(prompt: str = ""):  # type: ignore[no-untyped-def]
        yield {"type": "chunk", "text": prompt}

    pipeline = AsyncPipeline("closure", [AsyncPythonTask(name="t", function=local)])
    async with Runtime(shared.config(tmp_path)) as runtime:
        with pytest.raises(PipelineDefinitionError) as info:
            pipeline.stream({"prompt": "hi"}, config=runtime)
        message = str(info.value)
        assert "pipeline 'closure' cannot run on the 'TaskiqExecutor' executor" in message
        assert "load_pipeline_ref" in message and "closure" in message
        with pytest.raises(PipelineDefinitionError):
            await pipeline.execute({"prompt": "hi"}, config=runtime)


def test_the_executor_needs_a_shared_event_log_and_store(shared: Shared, tmp_path: Path) -> None:
    config = tmp_path / "local.yaml"
    config.write_text(f'executor: {{type: taskiq, broker: "{shared.broker}"}}\n')
    with pytest.raises(ConfigError, match="needs a shared event log"):
        Runtime(config)
    config.write_text(f'executor: {{type: taskiq, broker: "{shared.broker}"}}\n'
                      f'event_log: {{type: redis, url: "{shared.redis_url}"}}\n'
                      'run_log_store: {type: memory}\n')
    with pytest.raises(ConfigError, match="run log store that workers and web processes share"):
        Runtime(config)


async def test_a_run_streams_from_a_worker(shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    with workers(shared, config, tmp_path, 1):
        async with Runtime(config) as runtime:
            got = [e async for e in referenced().execute_streaming(
                {"count": 5, "interval": 0}, config=runtime, run_id="five")]
            assert got == [{"type": "tick", "i": i} for i in range(5)]
            log = await runtime.store.get("five")
            assert log.status == "completed"
            assert log.process is not None
            assert log.process.split(":")[1] != str(os.getpid())  # it ran in the worker
            result = await referenced().execute({"count": 2, "interval": 0}, config=runtime)
            assert result.status == "completed"


async def test_this_processs_sinks_follow_a_remote_run_through_the_event_log(
        shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    sink = CollectingSink()
    with workers(shared, config, tmp_path, 1):
        async with Runtime(config, sinks=[sink]) as runtime:
            handle = referenced().stream({"count": 3, "interval": 0}, config=runtime,
                                         run_id="followed")
            streamed = [(e.seq, e.type, e.data) async for e in handle]
            ends = [(e.seq, e.type, e.data) for e in sink.events_of("followed")]
            # The worker's records, all of them and in order, in this process's sink too.
            assert ends == streamed
            assert [e[1] for e in ends] == ["run.started", "step.started", "step.event",
                                            "step.event", "step.event", "step.completed",
                                            "run.completed"]
            assert [e[0] for e in ends] == list(range(1, 8))
            assert sink.closed == [("followed", "completed")]

            marker = tmp_path / "finally.txt"
            handle = referenced().stream({"count": 100_000, "marker": str(marker)},
                                         config=runtime, run_id="stopped")
            async for event in handle:
                if event.type == "step.event" and event.data["i"] == 1:
                    await runtime.event_log.cancel("stopped", "stop button")
            assert sink.events_of("stopped")[-1].type == "run.cancelled"
            assert sink.closed[-1] == ("stopped", "cancelled")


async def test_closing_the_generator_cancels_the_task_on_the_worker(
        shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    marker = tmp_path / "finally.txt"
    with workers(shared, config, tmp_path, 1):
        async with Runtime(config) as runtime:
            events = referenced().execute_streaming(
                {"count": 100_000, "marker": str(marker)}, config=runtime, run_id="closing")
            async for event in events:
                if event["i"] == 3:
                    break
            await events.aclose()
            assert marker.read_text() == "finally ran"  # the task's finally, on the worker
            log = await runtime.store.get("closing")
            assert log.status == "cancelled"


async def test_a_cancel_while_the_handles_iterator_closes_stops_the_run_once(
        shared: Shared, tmp_path: Path) -> None:
    # `break` out of `async for event in handle`, then `await handle.cancel()`: the iterator's
    # closing cancels the run too, at the same time. The second stop must wait for the first,
    # not cancel the run's task again halfway through its ending (which skipped the remote
    # end and wrote a local record over the worker's: "its run id is used by another run").
    config = shared.config(tmp_path)
    marker = tmp_path / "finally.txt"
    with workers(shared, config, tmp_path, 1):
        async with Runtime(config) as runtime:
            handle = referenced().stream({"count": 100_000, "marker": str(marker)},
                                         config=runtime, run_id="twice")
            events = handle.__aiter__()
            while (await events.__anext__()).type != "step.event":
                pass
            await asyncio.gather(handle.cancel("stop button"), events.aclose())
            assert handle.run_log.status == "cancelled"
            assert handle.run_log.warnings == []
            assert marker.read_text() == "finally ran"
            stored = await runtime.store.get("twice")
            assert stored.status == "cancelled"
            assert stored.process == handle.run_log.process  # the worker's record, whole


async def test_cancel_reaches_the_worker_and_the_stream_ends_cancelled(
        shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    marker = tmp_path / "finally.txt"
    with workers(shared, config, tmp_path, 1):
        async with Runtime(config) as runtime:
            handle = referenced().stream({"count": 100_000, "marker": str(marker)},
                                         config=runtime, run_id="cancelled")
            seen = []
            async for event in handle:
                seen.append(event.type)
                if event.type == "step.event" and event.data["i"] == 2:
                    await runtime.event_log.cancel("cancelled", "stop button")
            assert seen[-1] == "run.cancelled"
            assert handle.run_log.status == "cancelled"
            assert marker.read_text() == "finally ran"


async def test_a_killed_worker_ends_its_run_with_worker_lost(shared: Shared,
                                                             tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    survivor = start_worker(shared, config, tmp_path)
    try:
        async with Runtime(config) as runtime:
            # Only the doomed worker is alive when the run is queued.
            survivor.stop()
            doomed = start_worker(shared, config, tmp_path)
            handle = referenced().stream({"count": 100_000}, config=runtime, run_id="lost")
            types = []
            async for event in handle:
                types.append(event.type)
                if event.type == "step.event" and event.data["i"] == 3:
                    doomed.kill()
            assert types[-1] == "run.failed"
            assert handle.run_log.status == "failed"
            assert handle.run_log.error is not None
            assert handle.run_log.error.type == "WorkerLost"
            stored = await runtime.store.get("lost")
            assert stored.status == "failed" and stored.error is not None
            assert stored.error.type == "WorkerLost"
            info = await runtime.event_log.get_run("lost")
            assert info is not None and info.status == "failed"
            with pytest.raises(RunFailedError):
                await referenced().execute({"count": 1}, config=runtime)  # no worker left
            doomed.stop()
    finally:
        survivor.stop()


async def test_without_a_live_worker_a_run_fails_at_once(shared: Shared, tmp_path: Path) -> None:
    async with Runtime(shared.config(tmp_path)) as runtime:
        refusal = await runtime.executor.refusal()
        assert refusal is not None and "no live worker" in refusal
        with pytest.raises(RunFailedError) as info:
            await asyncio.wait_for(referenced().execute({"count": 1}, config=runtime), 10)
        assert info.value.run_log.error is not None
        assert info.value.run_log.error.type == "ExecutorUnavailableError"


async def test_sigterm_lets_runs_finish_within_the_grace_period(shared: Shared,
                                                                tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    worker = start_worker(shared, config, tmp_path, grace_period=30)
    try:
        async with Runtime(config) as runtime:
            handle = referenced().stream({"count": 40, "interval": 0.05}, config=runtime)
            types = []
            async for event in handle:
                types.append(event.type)
                if event.type == "step.event" and event.data["i"] == 2:
                    worker.kill(signal.SIGTERM)
            assert types[-1] == "run.completed"
            assert len([t for t in types if t == "step.event"]) == 40
        assert await asyncio.to_thread(worker.proc.wait, 30) == 0  # it exits by itself
    finally:
        worker.stop()


async def test_sigterm_cancels_runs_still_going_after_the_grace_period(
        shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    marker = tmp_path / "finally.txt"
    worker = start_worker(shared, config, tmp_path, grace_period=0.5)
    try:
        async with Runtime(config) as runtime:
            handle = referenced().stream({"count": 100_000, "marker": str(marker)},
                                         config=runtime)
            last = None
            async for event in handle:
                last = event
                if event.type == "step.event" and event.data["i"] == 2:
                    worker.kill(signal.SIGTERM)
            assert last is not None and last.type == "run.cancelled"
            assert last.data["reason"] == "the worker is shutting down"
            assert handle.run_log.status == "cancelled"
            assert marker.read_text() == "finally ran"
        assert await asyncio.to_thread(worker.proc.wait, 30) == 0  # it exits by itself
    finally:
        worker.stop()
