"""Sync tasks stuck in cancelled runs cannot starve the run log store or other threads' users,
and a step that must wait for a task thread says why (issue 10, item 6)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    Event,
    Limits,
    RunHandle,
    Runtime,
)
from runstream_async_python import AsyncPythonTask, PythonTask

#: Hang guard: every wait on the system under test is bounded by this.
GUARD = 20.0
#: Blocked threads wait at most this long (longer than GUARD: they are released by the gate).
BLOCK = 120.0


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Blocks sync tasks until set; set at the end of the test so no thread is left behind."""
    event = threading.Event()
    yield event
    event.set()


def blocking_pipeline(gate: threading.Event) -> AsyncPipeline:
    def stuck() -> Generator[dict[str, Any], None, None]:
        yield {"type": "blocked"}
        gate.wait(BLOCK)  # ignores ctx.cancelled, like a blocking client call

    return AsyncPipeline("stuck", [PythonTask(name="wait", function=stuck)])


async def hello() -> str:
    return "hello"


QUICK = AsyncPipeline("quick", [AsyncPythonTask(name="hi", function=hello,
                                                returns=["greeting"])])


async def block_and_cancel(pipeline: AsyncPipeline, runtime: Runtime, n: int) -> list[str]:
    """Start ``n`` runs whose sync step blocks, wait until each blocks, then cancel them (as a
    client that disconnects does). Their threads stay busy."""
    ids = []
    for _ in range(n):
        handle = pipeline.stream(config=runtime)
        events = aiter(handle)
        event: Event = await asyncio.wait_for(anext(events), GUARD)
        while event.type != "step.event":
            event = await asyncio.wait_for(anext(events), GUARD)
        log = await asyncio.wait_for(handle.cancel("disconnected"), GUARD)  # as a client's
        assert log.status == "cancelled"                                # disconnect does
        await events.aclose()
        ids.append(handle.run_id)
    return ids


async def test_stuck_sync_tasks_do_not_starve_the_file_system_store(
        tmp_path: Path, gate: threading.Event) -> None:
    # The loop's default executor as small as on the 2-core machine of the report (there:
    # min(32, cpus + 4) = 6 threads), and as many stuck sync tasks as it has threads.
    default = ThreadPoolExecutor(2, thread_name_prefix="default")
    asyncio.get_running_loop().set_default_executor(default)
    cfg = Config(run_log_store=ComponentConfig(type="file-system", path=str(tmp_path / "runs")),
                 limits=Limits(store_timeout=1.0, store_save_timeout=1.0,
                               cancel_grace_period=0.5))
    runtime = Runtime(cfg, entry_points=True)
    try:
        await block_and_cancel(blocking_pipeline(gate), runtime, 2)
        # A run after them is recorded at once, start and end, with no store warnings ...
        log = await asyncio.wait_for(QUICK.execute(config=runtime), GUARD)
        assert log.status == "completed" and log.warnings == []
        stored = await asyncio.wait_for(runtime.store.get(log.run_id), GUARD)
        assert stored.status == "completed"
        assert stored.steps["hi"].attempts[0].output_parameters == {"greeting": "hello"}
        # ... and the loop's default executor is still free for everyone else.
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), GUARD) == "free"
    finally:
        gate.set()
        await runtime.aclose()
        default.shutdown(wait=True)


async def test_the_file_system_store_does_not_depend_on_the_default_executor(
        tmp_path: Path, gate: threading.Event) -> None:
    # Application code may fill the loop's default executor itself (asyncio.to_thread of a
    # blocking call that hangs): the store's I/O does not wait behind it.
    loop = asyncio.get_running_loop()
    default = ThreadPoolExecutor(2, thread_name_prefix="default")
    loop.set_default_executor(default)
    blocked = [loop.run_in_executor(None, gate.wait, BLOCK) for _ in range(2)]
    cfg = Config(run_log_store=ComponentConfig(type="file-system", path=str(tmp_path / "runs")),
                 limits=Limits(store_timeout=1.0, store_save_timeout=1.0))
    runtime = Runtime(cfg, entry_points=True)
    try:
        log = await asyncio.wait_for(QUICK.execute(config=runtime), GUARD)
        assert log.status == "completed" and log.warnings == []
        stored = await asyncio.wait_for(runtime.store.get(log.run_id), GUARD)
        assert stored.status == "completed"
        listed = await asyncio.wait_for(runtime.store.list_runs(), GUARD)
        assert [s.run_id for s in listed] == [log.run_id]
    finally:
        gate.set()
        await asyncio.wait_for(asyncio.gather(*blocked), GUARD)
        await runtime.aclose()
        default.shutdown(wait=True)


async def test_a_step_that_waits_for_a_task_thread_says_why(
        gate: threading.Event, caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config(run_log_store=ComponentConfig(type="memory"),
                 limits=Limits(task_threads=2, cancel_grace_period=0.05))
    runtime = Runtime(cfg, entry_points=True)
    stuck_logged = asyncio.Event()
    loop = asyncio.get_running_loop()

    class Watch(logging.Handler):
        seen = 0

        def emit(self, record: logging.LogRecord) -> None:
            if "still runs in a task thread" in record.getMessage():
                self.seen += 1
                if self.seen == 2:
                    loop.call_soon_threadsafe(stuck_logged.set)

    watch = Watch()
    logging.getLogger("runstream").addHandler(watch)
    try:
        with caplog.at_level(logging.WARNING, logger="runstream"):
            stuck_ids = await block_and_cancel(blocking_pipeline(gate), runtime, 2)
            assert runtime.task_threads.stuck == 2
            # Past the grace period, each stuck step is logged, by run and step.
            await asyncio.wait_for(stuck_logged.wait(), GUARD)

            def work() -> str:
                return "done"

            handle: RunHandle = AsyncPipeline(
                "next", [PythonTask(name="work", function=work, returns=["out"])],
            ).stream(config=runtime)
            events = aiter(handle)
            event = await asyncio.wait_for(anext(events), GUARD)
            while event.type != "run.warning":
                event = await asyncio.wait_for(anext(events), GUARD)
            message = event.data["message"]
            assert "step 'work' waits for a task thread" in message
            assert "all 2 (limits.task_threads) are busy, 2 of them held by cancelled" in message
            gate.set()  # the stuck tasks return: the waiting step gets a thread and completes
            rest = [e async for e in events]
        assert rest[-1].type == "run.completed"
        log = await handle.result()
        assert log.steps["work"].attempts[0].output_parameters == {"out": "done"}
        assert message in log.warnings
        logged = [r.getMessage() for r in caplog.records]
        assert any(handle.run_id in m and "waits for a task thread" in m for m in logged)
        for run_id in stuck_ids:
            lines = [m for m in logged if run_id in m and "still runs in a task thread" in m]
            assert len(lines) == 1 and "step 'wait'" in lines[0]
    finally:
        logging.getLogger("runstream").removeHandler(watch)
        gate.set()
        await runtime.aclose()


async def test_task_threads_end_when_idle_and_the_runtime_closes(gate: threading.Event) -> None:
    cfg = Config(run_log_store=ComponentConfig(type="memory"), limits=Limits(task_threads=3))
    runtime = Runtime(cfg, entry_points=True)
    pipeline = AsyncPipeline("p", [PythonTask(name="s", function=lambda: None)])
    before = set(threading.enumerate())
    for _ in range(3):
        await pipeline.execute(config=runtime)
    threads = [t for t in set(threading.enumerate()) - before
               if t.name.startswith("runstream-task")]
    assert 1 <= len(threads) <= 3 and all(t.daemon for t in threads)
    await runtime.aclose()
    for thread in threads:
        thread.join(GUARD)
    assert not [t for t in threads if t.is_alive()]


def test_the_cli_exits_when_a_timed_out_sync_step_never_returns(tmp_path: Path) -> None:
    # Its thread cannot be stopped: the process must not wait for it at exit (a thread of the
    # loop's default executor was joined at the end of asyncio.run, for ever).
    (tmp_path / "my_tasks.py").write_text(
        "import threading\n\ndef hang():\n    threading.Event().wait()\n")
    (tmp_path / "hang.yaml").write_text(
        "name: hang\nsteps:\n  - {name: stuck, type: python, function: 'my_tasks:hang', "
        "timeout: 0.3}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env["RUNSTREAM_LOAD_PLUGINS"] = "runstream-async-python"
    script = Path(sys.executable).with_name("runstream")
    cmd = [str(script)] if script.exists() else [
        sys.executable, "-c", "from runstream._cli import entry; entry()"]
    done = subprocess.run([*cmd, "run", "hang.yaml", "--run-id", "hang-1"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=GUARD)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "run hang-1 failed in step 'stuck': StepTimeoutError: step 'stuck' did not finish "
        "within its timeout of 0.3 s")


async def test_task_threads_stay_within_their_bound_and_say_when_a_job_waits(
        gate: threading.Event) -> None:
    from runstream._threads import TaskThreads

    threads = TaskThreads(3, idle_timeout=0.05, name="bound-test")
    try:
        blocked = [threads.submit("r", f"s{i}", gate.wait, BLOCK) for i in range(3)]
        assert [waits for _, waits in blocked] == [False, False, False]
        job, waits = threads.submit("r", "late", lambda: "late")
        assert waits  # every thread is taken
        gate.set()
        assert await asyncio.wait_for(asyncio.wrap_future(job.future), GUARD) == "late"
        # Many jobs through a few threads: all run, and never more than 3 threads.
        jobs = [threads.submit("r", "s", lambda i=i: i * 2)[0] for i in range(200)]
        results = await asyncio.wait_for(
            asyncio.gather(*(asyncio.wrap_future(j.future) for j in jobs)), GUARD)
        assert results == [i * 2 for i in range(200)]
        assert len([t for t in threading.enumerate() if t.name.startswith("bound-test")]) <= 3
        # Idle threads end on their own; a later job gets a new one.
        for t in [t for t in threading.enumerate() if t.name.startswith("bound-test")]:
            t.join(GUARD)
        job, waits = threads.submit("r", "again", lambda: "again")
        assert not waits
        assert await asyncio.wait_for(asyncio.wrap_future(job.future), GUARD) == "again"
    finally:
        gate.set()
        threads.close()
