"""Runs of dead processes are found without relying on pids alone (issue 10, item 9): a killed
process that is not reaped yet (a zombie), and a process on another host or container whose
lease in the store ran out."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncGenerator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from runstream import AsyncPipeline, ComponentConfig, Config, Limits, RunLog, Runtime
from runstream._owner import current_owner, owner_is_alive
from runstream._runlog import now
from runstream_async_python import AsyncPythonTask

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from runstream import AsyncPipeline
    from runstream_async_python import AsyncPythonTask

    async def forever():
        print("started", flush=True)  # the run's record is written before its first step
        await asyncio.sleep(3600)

    asyncio.run(AsyncPipeline("p", [AsyncPythonTask(name="s", function=forever)]).execute(
        run_id=sys.argv[1]))
""")


def test_a_zombie_is_not_alive(in_tmp_cwd: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:
        owner = f"{current_owner().split(':')[0]}:{proc.pid}:?"
        assert owner_is_alive(owner) is True
        os.kill(proc.pid, signal.SIGKILL)
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped
        assert owner_is_alive(owner) is False
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def test_a_killed_process_not_yet_reaped_has_its_runs_abandoned(in_tmp_cwd: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, "zombie-1"], cwd=in_tmp_cwd,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        os.kill(proc.pid, signal.SIGKILL)
        # Wait for its death without reaping it: its pid still exists, as a zombie.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        runtime = Runtime()  # same cwd: the same sqlite database
        try:
            assert await runtime.recover_abandoned() == ["zombie-1"]
            log = await runtime.store.get("zombie-1")
            assert log.status == "abandoned" and "its process is gone" in log.warnings[-1]
        finally:
            await runtime.aclose()
    finally:
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _runtime(tmp_path: Path, store: str) -> Runtime:
    options: dict[str, Any] = {"type": store}
    if store != "memory":
        options["path"] = str(tmp_path / ("runs.db" if store == "sqlite" else "runs"))
    return Runtime(Config(run_log_store=ComponentConfig(**options),
                          limits=Limits(process_lease=30)))


async def _record_foreign_run(runtime: Runtime, run_id: str, process: str,
                              started_ago: float = 0.0) -> None:
    log = RunLog(run_id=run_id, pipeline="p", process=process,
                 started=now() - timedelta(seconds=started_ago))
    await runtime.store.create(log)


@pytest.mark.parametrize("store", ["sqlite", "file-system", "memory"])
async def test_a_process_on_another_host_is_dead_when_its_lease_ran_out(
        tmp_path: Path, store: str) -> None:
    runtime = _runtime(tmp_path, store)
    try:
        # A process in another container (another hostname: its pid means nothing here).
        gone, alive = "old-container:7:123", "other-container:8:456"
        await runtime.store.renew_lease(gone, now() - timedelta(seconds=1))
        await runtime.store.renew_lease(alive, now() + timedelta(seconds=60))
        await _record_foreign_run(runtime, "gone-1", gone)
        await _record_foreign_run(runtime, "alive-1", alive)
        # A process that never held a lease, started long before one lease period.
        await _record_foreign_run(runtime, "old-1", "vanished:9:789", started_ago=120)
        assert sorted(await runtime.recover_abandoned()) == ["gone-1", "old-1"]
        assert "its lease ran out" in (await runtime.store.get("gone-1")).warnings[-1]
        assert (await runtime.store.get("alive-1")).status == "running"
        # Its lease runs out later (its container was killed): the next look marks it.
        await runtime.store.renew_lease(alive, now() - timedelta(seconds=1))
        assert await runtime.recover_abandoned() == ["alive-1"]
    finally:
        await runtime.aclose()


async def test_a_run_renews_its_process_lease_and_others_leave_it_alone(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, "sqlite")
    other = _runtime(tmp_path, "sqlite")  # e.g. another worker sharing the database
    gate = asyncio.Event()
    started = asyncio.Event()

    async def held() -> AsyncGenerator[dict[str, Any], None]:
        started.set()
        yield {"type": "chunk", "text": "x"}
        await gate.wait()

    try:
        task = asyncio.create_task(AsyncPipeline("p", [AsyncPythonTask(
            name="s", function=held)]).execute(run_id="mine-1", config=runtime))
        await started.wait()
        leases = await runtime.store.leases()
        assert leases is not None and leases[current_owner()] > now() + timedelta(seconds=20)
        # Same process here, so pids say nothing: the lease alone keeps it alive for others.
        assert await other.recover_abandoned() == []
        gate.set()
        assert (await task).status == "completed"
    finally:
        gate.set()
        await runtime.aclose()
        await other.aclose()


async def test_a_run_whose_lease_may_still_run_out_is_looked_at_again(tmp_path: Path) -> None:
    """Recovery at start-up cannot decide on a run whose process's lease has not run out yet:
    it looks again when the lease ends, without anyone calling it."""
    runtime = Runtime(Config(run_log_store=ComponentConfig(
        type="sqlite", path=str(tmp_path / "runs.db")), limits=Limits(process_lease=30)))
    marked = asyncio.Event()
    try:
        process = "other-container:8:456"
        await runtime.store.renew_lease(process, now() + timedelta(seconds=0.3))
        await _record_foreign_run(runtime, "later-1", process)
        original = runtime.leases.recover

        async def recover() -> list[str]:
            found = await original()
            if found:
                marked.set()
            return found

        runtime.leases.recover = recover  # type: ignore[method-assign]
        assert await runtime.recover_abandoned() == []
        await asyncio.wait_for(marked.wait(), 30)  # a guard against a hang, not a measurement
        assert (await runtime.store.get("later-1")).status == "abandoned"
    finally:
        await runtime.aclose()


@pytest.mark.parametrize("store", ["sqlite", "file-system"])
async def test_runtimes_that_look_at_once_mark_each_run_once(tmp_path: Path, store: str) -> None:
    """Workers that start together all look for abandoned runs: each run is marked by one of
    them, with one warning, and none of them fails."""
    first, second = _runtime(tmp_path, store), _runtime(tmp_path, store)
    try:
        dead = [f"dead-{i:02d}" for i in range(20)]
        for run_id in dead:
            await _record_foreign_run(first, run_id, "gone-container:7:1", started_ago=120)
        found = await asyncio.gather(first.recover_abandoned(), second.recover_abandoned())
        assert sorted(found[0] + found[1]) == dead
        for run_id in dead:
            log = await first.store.get(run_id)
            assert log.status == "abandoned"
            assert sum("marked abandoned" in w for w in log.warnings) == 1
    finally:
        await first.aclose()
        await second.aclose()


async def test_runs_that_start_while_the_lease_is_due_share_one_renewal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of runs at a process's start (or after a pause) renews its lease once, with one
    write to the store, not once per run; a run cancelled meanwhile does not stop it."""
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    store_type = type(runtime.store)
    renew = store_type.renew_lease
    calls: list[str] = []
    renewing, release = asyncio.Event(), asyncio.Event()

    async def slow_renew(self: Any, owner: str, until: Any) -> bool:
        calls.append(owner)
        renewing.set()
        await release.wait()
        return await renew(self, owner, until)

    monkeypatch.setattr(store_type, "renew_lease", slow_renew)

    async def quick() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "done"}

    pipeline = AsyncPipeline("p", [AsyncPythonTask(name="s", function=quick)])
    try:
        runs = [asyncio.create_task(pipeline.execute(config=runtime)) for _ in range(50)]
        await renewing.wait()  # the first run renews; it and the runs after it wait for it
        runs[0].cancel()
        release.set()
        results = await asyncio.gather(*runs, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert all(log.status == "completed" for log in results[1:])  # type: ignore[union-attr]
        assert calls == [current_owner()]
    finally:
        await runtime.aclose()
