"""Runtimes sharing one database that look for abandoned runs at the same moment (workers
starting together) mark each run once, without errors: two runtimes in this process, and two
real processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta

from runstream import ComponentConfig, Config, Limits, RunLog, Runtime
from runstream_postgres import PostgresStore

DEAD = [f"dead-{i:02d}" for i in range(40)]


async def _record_dead_runs(dsn: str, schema: str) -> None:
    """Runs of a process in a container that is gone: never renewed a lease, started two lease
    periods ago."""
    store = PostgresStore(dsn=dsn, schema_name=schema)
    try:
        started = RunLog(run_id="x", pipeline="p").started - timedelta(seconds=120)
        for run_id in DEAD:
            await store.create(RunLog(run_id=run_id, pipeline="p", started=started,
                                      process="gone-container:7:1"))
        await store.create(RunLog(run_id="alive", pipeline="p", process="other-host:8:2"))
        await store.renew_lease("other-host:8:2", started + timedelta(seconds=600))
    finally:
        await store.close()


async def _check_marked_once(dsn: str, schema: str) -> None:
    store = PostgresStore(dsn=dsn, schema_name=schema)
    try:
        for run_id in DEAD:
            log = await store.get(run_id)
            assert log.status == "abandoned"
            assert sum("marked abandoned" in w for w in log.warnings) == 1
        assert (await store.get("alive")).status == "running"
    finally:
        await store.close()


def _config(dsn: str, schema: str) -> Config:
    return Config(run_log_store=ComponentConfig(type="postgres", dsn=dsn, schema_name=schema),
                  limits=Limits(process_lease=30))


async def test_two_runtimes_recovering_at_once(dsn: str, schema: str) -> None:
    await _record_dead_runs(dsn, schema)
    async with Runtime(_config(dsn, schema)) as first, Runtime(_config(dsn, schema)) as second:
        found = await asyncio.gather(first.recover_abandoned(), second.recover_abandoned())
    assert sorted(found[0] + found[1]) == DEAD  # each run marked by exactly one of them
    await _check_marked_once(dsn, schema)


WORKER = textwrap.dedent("""
    import asyncio, json, sys
    from runstream import ComponentConfig, Config, Limits, Runtime

    async def main():
        config = Config(run_log_store=ComponentConfig(
            type="postgres", dsn=sys.argv[1], schema_name=sys.argv[2]),
            limits=Limits(process_lease=30))
        async with Runtime(config) as runtime:
            await runtime.store.list_runs(limit=1)  # connected: only the look is left
            print("ready", flush=True)
            sys.stdin.readline()  # the test says go to both at once
            print(json.dumps(await runtime.recover_abandoned()), flush=True)

    asyncio.run(main())
""")


async def test_two_processes_recovering_at_once(dsn: str, schema: str) -> None:
    await _record_dead_runs(dsn, schema)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, dsn, schema], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in results]
    found = [json.loads(out.splitlines()[-1]) for out, _ in results]
    assert sorted(found[0] + found[1]) == DEAD
    # The one that did not mark a run says nothing about it; neither reports an error.
    assert all("Error" not in err and "Traceback" not in err for _, err in results), results
    await _check_marked_once(dsn, schema)
