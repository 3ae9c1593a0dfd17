"""The ``postgres`` store as users meet it: through the config and entry points, its schema
created once however many processes start at once, its options checked."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    ConfigError,
    RunLog,
    Runtime,
    StoreError,
)
from runstream_async_python import AsyncPythonTask
from runstream_postgres import PostgresStore


def _config(dsn: str, schema: str) -> Config:
    return Config(run_log_store=ComponentConfig(type="postgres", dsn=dsn, schema_name=schema))


async def test_runs_are_recorded_through_the_config(dsn: str, schema: str) -> None:
    async def hello() -> None:
        return None

    async with Runtime(_config(dsn, schema)) as runtime:
        assert isinstance(runtime.store, PostgresStore)
        log = await AsyncPipeline("greet", [AsyncPythonTask(name="s", function=hello)]).execute(
            {"prompt": "hi"}, run_id="pg-1", config=runtime)
        assert log.status == "completed"
        stored = await runtime.store.get("pg-1")
        assert stored.status == "completed" and stored.steps["s"].status == "completed"
        assert stored.parameters == {"prompt": "hi"}
        [summary] = await runtime.store.list_runs()
        assert (summary.run_id, summary.pipeline, summary.status) == ("pg-1", "greet",
                                                                      "completed")


def test_runstream_plugins_lists_it_and_runs_ls_reads_it(
        dsn: str, schema: str, in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "runstream.yaml").write_text(
        f"run_log_store: {{type: postgres, dsn: '{dsn}', schema_name: {schema}}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    cmd = [sys.executable, "-c", "from runstream._cli import entry; entry()"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cmd, *args], cwd=in_tmp_cwd, env=env, capture_output=True,
                              text=True, timeout=60)

    plugins = {p["distribution"]: p for p in json.loads(run("plugins", "--json").stdout)}
    assert plugins["runstream-postgres"]["status"] == "loaded"
    assert plugins["runstream-postgres"]["registered"] == {"run_log_stores": ["postgres"]}
    listed = run("runs", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


async def test_many_processes_starting_at_once_create_the_schema_once(
        dsn: str, schema: str) -> None:
    stores = [PostgresStore(dsn=dsn, schema_name=schema, min_size=0) for _ in range(8)]
    try:
        # Each store's first call creates the tables, all at the same moment.
        await asyncio.gather(*(s.create(RunLog(run_id=f"m-{i}", pipeline="p"))
                               for i, s in enumerate(stores)))
        assert len(await stores[0].list_runs()) == 8
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(f"SELECT version FROM {schema}.runstream_schema").fetchall()
        assert rows == [(1,)]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_tables_of_a_newer_release_are_refused(dsn: str, schema: str) -> None:
    async with Runtime(_config(dsn, schema)) as runtime:
        await runtime.store.list_runs()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {schema}.runstream_schema VALUES (99)")
    store = PostgresStore(dsn=dsn, schema_name=schema)
    try:
        with pytest.raises(StoreError, match="schema version 99, newer than this "
                                             "runstream-postgres knows"):
            await store.list_runs()
    finally:
        await store.close()


async def test_columns_hold_what_text_columns_cannot(store: PostgresStore) -> None:
    """A NUL or a lone surrogate in a pipeline name cannot go into a text column as it is: the
    summary shows U+FFFD, the run log keeps the name."""
    await store.create(RunLog(run_id="odd-1", pipeline="a\0b\ud800"))
    [summary] = await store.list_runs()
    assert summary.pipeline == "a\ufffdb\ufffd"
    assert (await store.get("odd-1")).pipeline == "a\0b\ufffd"


def test_bad_options_are_config_errors_that_never_show_the_password(tmp_path: Path) -> None:
    secret = "pa55-w0rd-xyz"
    bad = f"postgresql://app:{secret}@db.internal:5432/runs?sslmode"
    with pytest.raises(ConfigError) as caught:
        Runtime(Config(run_log_store=ComponentConfig(type="postgres", dsn=bad)))
    assert secret not in str(caught.value)
    assert "postgresql://app:***@db.internal:5432/runs?sslmode" in str(caught.value)
    with pytest.raises(ConfigError, match="schema_name"):
        Runtime(Config(run_log_store=ComponentConfig(
            type="postgres", dsn="postgresql://h/db", schema_name="drop table;")))
    with pytest.raises(ConfigError, match="missing required key 'dsn'"):
        Runtime(Config(run_log_store=ComponentConfig(type="postgres")))
    good = PostgresStore(dsn=f"postgresql://app:{secret}@db.internal/runs")
    assert secret not in repr(good) and secret not in str(good.describe())
    assert good.describe()["dsn"] == "postgresql://app:***@db.internal/runs"


def test_a_runtime_used_from_one_event_loop_after_another(dsn: str, schema: str) -> None:
    """Pipeline.execute() runs each run in a new event loop: the store opens a pool in each
    (a pool cannot outlive its loop) and leaves nothing open behind (warnings are errors)."""
    from runstream import Pipeline
    from runstream_async_python import PythonTask

    runtime = Runtime(_config(dsn, schema))
    try:
        pipeline = Pipeline("sync", [PythonTask(name="s", function=lambda: None)])
        assert pipeline.execute(run_id="loop-1", config=runtime).status == "completed"
        assert pipeline.execute(run_id="loop-2", config=runtime).status == "completed"
    finally:
        asyncio.run(runtime.aclose())
    store = PostgresStore(dsn=dsn, schema_name=schema)

    async def listed() -> list[str]:
        try:
            return [s.run_id for s in await store.list_runs()]
        finally:
            await store.close()

    assert asyncio.run(listed()) == ["loop-2", "loop-1"]
