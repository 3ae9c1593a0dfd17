"""Big events and readers that stall, over HTTP: memory is bounded in bytes, not only events.

A task yielding 64 KiB events and a client that never reads: the run is held back once its
queue (``limits.max_queued_bytes``) and its replay buffer (``max_run_bytes``) are full, and
what the replay buffer keeps after the run is within ``max_total_bytes``, then released.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from httpx_sse import connect_sse
from runstream import AsyncPipeline, ComponentConfig, Config, Limits, MemoryEventLog, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE

from tests._server import serve
from tests._slow_clients import raw_request, wait_until_ended

MIB = 1024 * 1024
EVENT = 64 * 1024
#: 1,500 x 64 KiB = 96 MiB if nothing held the run back (the event-count bounds would not).
TOTAL = 1_500
MAX_QUEUED_BYTES = 1 * MIB
MAX_RUN_BYTES = 2 * MIB
MAX_TOTAL_BYTES = 3 * MIB
TTL = 0.5
SEND_TIMEOUT = 1.0


class Probe:
    def __init__(self) -> None:
        self.produced = 0


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory"),
                             limits=Limits(max_queued_bytes=MAX_QUEUED_BYTES),
                             event_log=ComponentConfig(
                                 type="memory", max_run_bytes=MAX_RUN_BYTES,
                                 max_total_bytes=MAX_TOTAL_BYTES, ttl=TTL)))
    yield runtime
    asyncio.run(runtime.aclose())


def make_app(rt: Runtime, probe: Probe) -> FastAPI:
    sse = SSE(rt, send_timeout=SEND_TIMEOUT)
    app = FastAPI()
    app.include_router(sse.router())

    def big(total: int) -> Any:
        async def task() -> AsyncGenerator[dict[str, Any], None]:
            for i in range(total):
                probe.produced += 1
                yield {"i": i, "pad": "x" * EVENT}
        return task

    flood = AsyncPipeline("flood", [AsyncPythonTask(name="llm", function=big(TOTAL))])
    short = AsyncPipeline("short", [AsyncPythonTask(name="llm", function=big(200))])

    @app.get("/chat/{run_id}")
    async def chat(run_id: str) -> Response:
        return sse.response(flood, run_id=run_id)

    @app.get("/short/{run_id}")
    async def chat_short(run_id: str) -> Response:
        return sse.response(short, run_id=run_id)

    @app.get("/stats")
    async def stats() -> dict[str, int]:  # read in the server's loop, which owns the log
        log = rt.event_log
        assert isinstance(log, MemoryEventLog)
        return {"produced": probe.produced, "bytes_kept": log.bytes_kept()}

    return app


def produced_bound() -> int:
    # The run's queue, its replay buffer (plus the one event past each bound), one write in
    # the server's socket buffer (runstream_sse writes at most 256 KiB at a time, plus
    # asyncio's 64 KiB), and the kernel's socket buffers on loopback, counted as 8 MiB.
    held = MAX_QUEUED_BYTES + MAX_RUN_BYTES + 256 * 1024 + 64 * 1024 + 8 * MIB
    return held // EVENT + 4


def test_a_stalled_reader_parks_a_run_of_big_events_at_its_byte_bounds(rt: Runtime) -> None:
    probe = Probe()
    with serve(make_app(rt, probe)) as base, httpx.Client(base_url=base, timeout=10) as client:
        sock = raw_request(base, "/chat/stalled-big")
        try:
            status = wait_until_ended(client, "stalled-big", SEND_TIMEOUT + 10)
            assert status == "cancelled", status  # by the send timeout
            produced = client.get("/stats").json()["produced"]
            print(f"produced {produced} (bound {produced_bound()})")
            assert produced <= produced_bound() < TOTAL, produced
            # What the replay buffer keeps of the run is within its byte bound.
            kept = client.get("/stats").json()["bytes_kept"]
            assert 0 < kept <= MAX_RUN_BYTES + EVENT + 1024, kept
        finally:
            sock.close()


def test_readers_that_keep_up_get_every_big_event_and_the_memory_is_released_after_ttl(
        rt: Runtime) -> None:
    probe = Probe()
    with serve(make_app(rt, probe)) as base, httpx.Client(base_url=base, timeout=30) as client:
        for n in range(3):  # 3 x 12.5 MiB of events through a 3 MiB replay budget
            with connect_sse(client, "GET", f"/short/reader-{n}") as source:
                events = list(source.iter_sse())
            assert [len(e.data) for e in events if e.event == "message"] == [
                len(f'{{"i": {i}, "pad": "{"x" * EVENT}"}}') for i in range(200)]
            assert events[-1].event == "run.completed"
            assert 0 < client.get("/stats").json()["bytes_kept"] <= MAX_TOTAL_BYTES
        deadline = time.monotonic() + TTL + 10
        while client.get("/stats").json()["bytes_kept"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/stats").json()["bytes_kept"] == 0
