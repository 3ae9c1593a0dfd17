"""`runs ls` over 100,000 runs reads the newest rows from an index, with or without a status
filter: asserted on the query plan (what makes it fast on any machine), not on a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from runstream import RunLog, RunStatus
from runstream_postgres import PostgresStore

RUNS = 100_000
STATUSES: list[RunStatus] = ["completed", "completed", "completed", "failed", "cancelled"]
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


async def _create_tables(dsn: str) -> None:
    store = PostgresStore(dsn=dsn, schema_name="scale")
    await store.list_runs()  # creates the tables
    await store.close()


@pytest.fixture(scope="module")
def big_dsn(dsn: str) -> str:
    """The database with 100,000 runs in schema ``scale`` (written with COPY: seconds, not
    minutes), every 5,000th of them running."""
    asyncio.run(_create_tables(dsn))
    log = RunLog(run_id="template", pipeline="chat", status="completed").to_json()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE scale.runstream_runs")
        with conn.cursor().copy("COPY scale.runstream_runs "
                                "(run_id, pipeline, status, started, ended, log) "
                                "FROM STDIN") as copy:
            for i in range(RUNS):
                status = "running" if i % 5000 == 0 else STATUSES[i % len(STATUSES)]
                started = EPOCH + timedelta(seconds=i)
                copy.write_row((f"run-{i:06d}", "chat", status, started,
                                None if status == "running" else started, log))
        conn.execute("ANALYZE scale.runstream_runs")
    return dsn


@pytest.fixture
async def big(big_dsn: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(dsn=big_dsn, schema_name="scale")
    yield store
    await store.close()


async def _plan(store: PostgresStore, dsn: str, status: RunStatus | None) -> str:
    query, args = store._list_query(50, status)
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(b"EXPLAIN " + query.as_bytes(conn), args)
        return "\n".join(row[0] for row in await cur.fetchall())


@pytest.mark.parametrize("status", [None, "running", "completed"])
async def test_list_runs_reads_an_index(big: PostgresStore, dsn: str,
                                        status: RunStatus | None) -> None:
    plan = await _plan(big, dsn, status)
    # A rare status (running: what recovery looks for) is read from (status, started); for a
    # common one the planner may as well walk (started) and skip the others: both stop after
    # 50 rows, neither sorts.
    expected = {None: "runstream_runs_started", "running": "runstream_runs_status",
                "completed": "runstream_runs_"}[status]
    assert f"Index Scan using {expected}" in plan, plan
    assert "Sort" not in plan and "Seq Scan" not in plan, plan


async def test_list_runs_over_100_000_runs(big: PostgresStore) -> None:
    newest = await big.list_runs(limit=50)
    assert [s.run_id for s in newest] == [f"run-{i:06d}" for i in range(RUNS - 1, RUNS - 51, -1)]
    running = await big.list_runs(limit=50, status="running")
    assert [s.run_id for s in running] == [f"run-{i:06d}" for i in range(95_000, -1, -5000)]
    assert newest[0].started == EPOCH + timedelta(seconds=RUNS - 1)
