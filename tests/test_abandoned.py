"""Runs left `running` by a process that died are marked `abandoned` on the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from runstream import Runtime
from runstream._owner import current_owner, owner_is_alive

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from runstream import AsyncPipeline
    from runstream_async_python import AsyncPythonTask

    async def forever():
        print("started", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(AsyncPipeline("p", [AsyncPythonTask(name="s", function=forever)]).execute(
        run_id=sys.argv[1]))
""")


def test_owner_identity() -> None:
    assert owner_is_alive(current_owner()) is True
    assert owner_is_alive(None) is None
    assert owner_is_alive("some-other-host:1:1") is None


async def test_killed_process_runs_are_marked_abandoned(in_tmp_cwd: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, "killed-1"], cwd=in_tmp_cwd,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        # The step prints this only after the run's row is in the store (the start is
        # recorded before the first step runs): no need to wait any longer.
        assert proc.stdout.readline().strip() == "started"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    runtime = Runtime()  # same cwd: the same sqlite database
    try:
        assert (await runtime.store.get("killed-1")).status == "running"
        # a run of this (live) process is not touched
        from runstream import AsyncPipeline
        from runstream_async_python import AsyncPythonTask

        async def quick() -> None:
            return None

        await AsyncPipeline("q", [AsyncPythonTask(name="q", function=quick)]).execute(
            run_id="live-1", config=runtime)
        log = await runtime.store.get("killed-1")
        assert log.status == "abandoned" and log.ended is not None
        assert "marked abandoned" in log.warnings[-1]
        assert (await runtime.store.get("live-1")).status == "completed"
        assert await runtime.recover_abandoned() == []
    finally:
        await runtime.aclose()
