"""PostgreSQL out of reach: at start, a prompt StoreError naming the DSN with its password
masked; lost during a run, StoreErrors the Recorder retries, and the pool reconnects when the
server is back."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    Limits,
    RunLog,
    Runtime,
    StoreError,
)
from runstream_async_python import AsyncPythonTask
from runstream_postgres import PostgresStore

from tests._servers import PostgresServer, free_port

SECRET = "s3cret-pw-123"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a server that hangs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


async def test_unreachable_at_start_is_a_prompt_store_error_with_the_password_masked(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens there
    store = PostgresStore(dsn=f"postgresql://app:{SECRET}@127.0.0.1:{port}/runs",
                          connect_timeout=2)
    started = time.monotonic()
    try:
        with pytest.raises(StoreError) as caught:
            await store.create(RunLog(run_id="r1", pipeline="p"))
    finally:
        await store.close()
    assert time.monotonic() - started < 5  # a guard against a hang: refused at once
    message = str(caught.value)
    assert f"postgresql://app:***@127.0.0.1:{port}/runs" in message
    assert "cannot connect" in message and "refused" in message.lower()
    assert SECRET not in message and SECRET not in caplog.text


async def test_a_server_that_never_answers_fails_within_the_connect_timeout(
        silent_server: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = PostgresStore(dsn=f"host=127.0.0.1 port={silent_server} user=app "
                              f"password={SECRET} dbname=runs", connect_timeout=2)
    started = time.monotonic()
    try:
        with pytest.raises(StoreError) as caught:
            await store.list_runs()
    finally:
        await store.close()
    assert time.monotonic() - started < 8  # connect_timeout (libpq waits at least 2 s), bounded
    message = str(caught.value)
    assert "password=***" in message and SECRET not in message and SECRET not in caplog.text


async def test_a_runtime_whose_database_is_down_says_so_and_the_run_still_ends() -> None:
    dsn = f"postgresql://app:{SECRET}@127.0.0.1:{free_port()}/runs"

    async def hello() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "chunk", "text": "hi"}

    config = Config(run_log_store=ComponentConfig(type="postgres", dsn=dsn, connect_timeout=1),
                    limits=Limits(store_retry_period=0.5))
    async with Runtime(config) as runtime:
        log = await AsyncPipeline("p", [AsyncPythonTask(name="s", function=hello)]).execute(
            config=runtime)
    assert log.status == "completed"
    assert any("run log store" in w for w in log.warnings), log.warnings
    assert SECRET not in log.to_json()


async def test_server_stopped_mid_run_then_back(
        postgres: PostgresServer, dsn: str, schema: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The store fails with StoreError while the server is down, and works again once it is
    back on the same port and data (the pool replaces its dead connections). The password
    (accepted by the test server's trust auth) shows nowhere."""
    caplog.set_level(logging.DEBUG)
    with_password = postgres.dsn("runstream_tests", password=SECRET)
    store = PostgresStore(dsn=with_password, schema_name=schema, min_size=2, connect_timeout=2)
    try:
        log = RunLog(run_id="across-restart", pipeline="p")
        await store.create(log)
        postgres.stop()
        try:
            log.status = "completed"
            masked = r"run log database postgresql://postgres:\*\*\*@"
            with pytest.raises(StoreError, match=masked) as caught:
                await store.save(log)
            with pytest.raises(StoreError):
                await store.get("across-restart")
        finally:
            postgres.start()
        await store.save(log)
        assert (await store.get("across-restart")).status == "completed"
    finally:
        await store.close()
    assert SECRET not in str(caught.value) and SECRET not in caplog.text


async def test_the_final_record_lands_when_the_server_is_back(
        postgres: PostgresServer, dsn: str, schema: str) -> None:
    """A run that ends while PostgreSQL is down streams to its end; the Recorder retries its
    final record, which lands once the server is back."""
    gate = asyncio.Event()
    started = asyncio.Event()

    async def held() -> AsyncGenerator[dict[str, Any], None]:
        started.set()
        yield {"type": "chunk", "text": "x"}
        await gate.wait()
        yield {"type": "chunk", "text": "y"}

    config = Config(run_log_store=ComponentConfig(type="postgres", dsn=dsn, schema_name=schema,
                                                  connect_timeout=1),
                    limits=Limits(store_retry_period=60))
    async with Runtime(config) as runtime:
        run = asyncio.create_task(AsyncPipeline("p", [AsyncPythonTask(
            name="s", function=held)]).execute(run_id="outage-1", config=runtime))
        await started.wait()
        assert (await runtime.store.get("outage-1")).status == "running"
        postgres.stop()
        try:
            gate.set()
            log = await run
            assert log.status == "completed"  # the run itself never waited for the database
            assert len(runtime.recorder) == 1  # its final record is being retried
        finally:
            postgres.start()
        await runtime.recorder.aclose(grace=60)  # the retries end: the record landed
        assert (await runtime.store.get("outage-1")).status == "completed"


async def test_a_call_that_gets_no_answer_fails_within_the_command_timeout(
        dsn: str, schema: str) -> None:
    """A server that holds a call (here: a lock another session keeps) fails it after
    ``command_timeout``; the store serves the next call once the server answers again."""
    import psycopg

    store = PostgresStore(dsn=dsn, schema_name=schema, command_timeout=0.5)
    try:
        await store.create(RunLog(run_id="held", pipeline="p"))
        async with await psycopg.AsyncConnection.connect(dsn) as other:
            await other.execute(f"LOCK TABLE {schema}.runstream_runs IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreError, match=r"reading run held: no answer within 0.5 s"):
                await store.get("held")
            await other.rollback()
        assert (await store.get("held")).status == "running"
    finally:
        await store.close()


async def test_calls_waiting_for_a_database_that_never_answers_fail_together(
        silent_server: int) -> None:
    """Runs that start together while the database does not answer all get their StoreError
    after one connect_timeout, not one connect_timeout each, in turn."""
    store = PostgresStore(dsn=f"postgresql://app@127.0.0.1:{silent_server}/runs",
                          connect_timeout=2)
    started = time.monotonic()
    try:
        results = await asyncio.gather(
            *(store.create(RunLog(run_id=f"r{i}", pipeline="p")) for i in range(20)),
            return_exceptions=True)
    finally:
        await store.close()
    assert all(isinstance(r, StoreError) for r in results), results
    assert time.monotonic() - started < 8  # 20 in turn would take 40 s or more
