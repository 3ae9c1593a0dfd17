"""A connection that died in the pool (a PostgreSQL restart) or mid-call: the call is retried
once on a new connection, and still gives the answer it would have given; connections are not
checked as they are handed out (no extra round trip per call)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from runstream import RunIdError, RunLog, StoreError
from runstream_postgres import PostgresStore

from tests._servers import PostgresServer

Execute = Any


@pytest.fixture
def restarted(postgres: PostgresServer) -> Iterator[PostgresServer]:
    """The session's server, started again by the end of the test whatever happened."""
    yield postgres
    if postgres.proc is None:
        postgres.start()


def restart(postgres: PostgresServer) -> None:
    postgres.stop()  # a fast shutdown: the server closes every session
    postgres.start()


async def test_calls_after_a_restart_succeed(restarted: PostgresServer, dsn: str,
                                             schema: str) -> None:
    """Every connection the pool holds died with the server; the calls that find them dead
    (and those that waited for a connection of the pool given up then) are retried."""
    store = PostgresStore(dsn=dsn, schema_name=schema, min_size=4, max_size=4)
    try:
        await store.create(RunLog(run_id="before", pipeline="p"))
        # Four connections used, then back in the pool.
        await asyncio.gather(*(store.get("before") for _ in range(8)))
        restart(restarted)
        later = RunLog(run_id="before", pipeline="p", status="completed")
        until = datetime.now(UTC) + timedelta(seconds=30)
        results = await asyncio.gather(
            store.get("before"), store.list_runs(), store.leases(),
            store.renew_lease("proc-1", until), store.create(RunLog(run_id="after", pipeline="p")),
            *(store.get("before") for _ in range(8)))
        # list_runs and the create of "after" ran at once: "after" is listed or not yet.
        assert results[0].status == "running"
        assert {r.run_id for r in results[1]} - {"after"} == {"before"}
        assert {r.run_id for r in await store.list_runs()} == {"before", "after"}
        await store.save(later)
        assert (await store.get("before")).status == "completed"
        assert set((await store.leases()) or {}) == {"proc-1"}
    finally:
        await store.close()


@pytest.mark.parametrize("call", ["create", "save", "save_if", "get", "list_runs"])
async def test_the_first_call_after_a_restart_succeeds(
        restarted: PostgresServer, dsn: str, schema: str, call: str) -> None:
    store = PostgresStore(dsn=dsn, schema_name=schema)
    try:
        log = RunLog(run_id="r1", pipeline="p")
        await store.create(log)
        restart(restarted)
        log.status = "completed"
        if call == "create":
            await store.create(RunLog(run_id="r2", pipeline="p"))
        elif call == "save":
            await store.save(log)
        elif call == "save_if":
            assert await store.save_if(log, status="running")
        elif call == "get":
            assert (await store.get("r1")).run_id == "r1"
        else:
            assert [s.run_id for s in await store.list_runs()] == ["r1"]
    finally:
        await store.close()


def lose_the_reply(monkeypatch: pytest.MonkeyPatch, statement: str, *,
                   applied: bool) -> list[str]:
    """The first statement starting with ``statement`` loses its connection (the server ends
    the session): after the server ``applied`` it, or before. Returns the statements hit."""
    original = psycopg.AsyncConnection.execute
    hit: list[str] = []

    async def execute(self: psycopg.AsyncConnection[Any], query: Any, params: Any = None,
                      **kwargs: Any) -> Any:
        text = query.as_string(self) if isinstance(query, sql.Composable) else str(query)
        if text.startswith(statement) and not hit:
            hit.append(text)
            if applied:
                await original(self, query, params, **kwargs)
            await original(self, "SELECT pg_terminate_backend(pg_backend_pid())")
        return await original(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", execute)
    return hit


async def test_a_create_whose_reply_was_lost_is_not_reported_as_a_taken_id(
        store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.list_runs()  # the tables exist
    hit = lose_the_reply(monkeypatch, "INSERT", applied=True)
    log = RunLog(run_id="lost-reply", pipeline="p")
    await store.create(log)  # the retry finds its own row: no RunIdError
    assert hit
    assert (await store.get("lost-reply")).model_dump() == log.model_dump()
    with pytest.raises(RunIdError):  # a second create of the same run is still refused
        await store.create(log)


async def test_a_retried_create_of_a_taken_id_is_still_refused(
        store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    first = RunLog(run_id="taken", pipeline="p")
    await store.create(first)
    hit = lose_the_reply(monkeypatch, "INSERT", applied=False)
    with pytest.raises(RunIdError, match="'taken' is already used"):
        await store.create(RunLog(run_id="taken", pipeline="other"))
    assert hit
    assert (await store.get("taken")).pipeline == "p"


async def test_a_save_if_whose_reply_was_lost_reports_that_it_saved(
        store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    log = RunLog(run_id="claimed", pipeline="p", status="queued")
    await store.create(log)
    hit = lose_the_reply(monkeypatch, "UPDATE", applied=True)
    log.status = "running"
    assert await store.save_if(log, status="queued")
    assert hit
    assert (await store.get("claimed")).status == "running"
    other = RunLog(run_id="claimed", pipeline="p", status="failed")
    assert not await store.save_if(other, status="queued")  # the status moved on: refused


async def test_a_save_if_retried_after_someone_else_saved_is_refused(
        store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    log = RunLog(run_id="raced", pipeline="p", status="running")
    await store.create(log)
    theirs = RunLog(run_id="raced", pipeline="p", status="completed")
    await store.save(theirs)
    hit = lose_the_reply(monkeypatch, "UPDATE", applied=False)
    mine = RunLog(run_id="raced", pipeline="p", status="abandoned")
    assert not await store.save_if(mine, status="running")
    assert hit
    assert (await store.get("raced")).status == "completed"


async def test_a_call_that_fails_twice_is_a_store_error(
        store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.list_runs()
    original = psycopg.AsyncConnection.execute

    async def execute(self: psycopg.AsyncConnection[Any], query: Any, params: Any = None,
                      **kwargs: Any) -> Any:
        text = query.as_string(self) if isinstance(query, sql.Composable) else str(query)
        if text.startswith("SELECT log"):
            await original(self, "SELECT pg_terminate_backend(pg_backend_pid())")
        return await original(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", execute)
    with pytest.raises(StoreError, match=r"run log database postgresql://postgres@.*"
                                         r"reading run r1: .*terminating connection"):
        await store.get("r1")
