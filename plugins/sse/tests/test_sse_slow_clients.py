"""Clients that read slowly or not at all: the run is held back (bounded memory), and the send
timeout frees it: the response is cut and the run cancelled."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from httpx_sse import connect_sse
from runstream import AsyncPipeline, ComponentConfig, Config, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE

from tests._server import serve
from tests._slow_clients import raw_request, wait_until_ended

#: The send timeout under test, and the margin the issue allows on top of it.
SEND_TIMEOUT = 0.5
MARGIN = 5.0
#: A fast producer of big events: 5,000 x 16 KiB = 80 MB if nothing held it back.
TOTAL = 5_000
PAD = "x" * 16_384
#: Frames a primary reader may be behind before the run is held (the replay buffer's size).
MAX_EVENTS = 64
#: runstream's run channel capacity (core), plus one batch handed over while the pump waits.
CHANNEL = 1024 + 256


class Probe:
    def __init__(self) -> None:
        self.produced = 0


def big_events(probe: Probe) -> Any:
    async def task() -> AsyncGenerator[dict[str, Any], None]:
        for i in range(TOTAL):
            probe.produced = i + 1
            yield {"i": i, "pad": PAD}
    return task


@pytest.fixture
def rt(memory_config: Config) -> Iterator[Runtime]:
    runtime = Runtime(memory_config.model_copy(update={"event_log": ComponentConfig(
        type="memory", max_events=MAX_EVENTS)}))
    yield runtime
    asyncio.run(runtime.aclose())


def make_app(rt: Runtime, probe: Probe) -> FastAPI:
    sse = SSE(rt, send_timeout=SEND_TIMEOUT)
    app = FastAPI()
    app.include_router(sse.router())
    pipe = AsyncPipeline("flood", [AsyncPythonTask(name="llm", function=big_events(probe))])

    @app.get("/chat/{run_id}")
    async def chat(run_id: str) -> Response:
        return sse.response(pipe, run_id=run_id)

    return app


def last_event(client: httpx.Client, run_id: str) -> tuple[str, dict[str, Any]]:
    with connect_sse(client, "GET", f"/runs/{run_id}/events") as source:
        events = [(e.event, e.data) for e in source.iter_sse() if e.event != "message"]
    name, data = events[-1]
    return name, json.loads(data)


def produced_bound() -> int:
    # Held back once the client's stream is MAX_EVENTS frames behind, plus what the run channel
    # holds, plus what fitted into the socket buffers (kernel and asyncio's 64 KiB) before the
    # first write waited: about 3 MB on loopback here, counted generously as 8 MB.
    socket_events = (8 * 1024 * 1024 + 64 * 1024) // len(PAD)
    return MAX_EVENTS + CHANNEL + socket_events


@pytest.mark.parametrize("reader", ["never-reads", "slowloris"])
def test_a_stalled_client_is_cut_after_the_send_timeout_and_its_run_cancelled(
        rt: Runtime, reader: str) -> None:
    probe = Probe()
    run_id = f"stalled-{reader}"
    with serve(make_app(rt, probe)) as base, httpx.Client(base_url=base, timeout=10) as client:
        sock = raw_request(base, f"/chat/{run_id}")
        begun = time.monotonic()
        stop = threading.Event()
        trickle = None
        if reader == "slowloris":  # 64 bytes every 50 ms: ~1.3 KB/s against an 80 MB stream
            def read_slowly() -> None:
                sock.settimeout(0.05)
                while not stop.is_set():
                    try:
                        if not sock.recv(64):
                            return
                    except TimeoutError:
                        pass
                    except OSError:
                        return
                    time.sleep(0.05)
            trickle = threading.Thread(target=read_slowly, daemon=True)
            trickle.start()
        try:
            status = wait_until_ended(client, run_id, SEND_TIMEOUT + MARGIN)
            latency = time.monotonic() - begun
            produced = probe.produced
            assert status == "cancelled", status
            assert latency < SEND_TIMEOUT + MARGIN, latency
            # Memory stayed bounded: the producer was held back long before the end.
            assert produced <= produced_bound() < TOTAL, produced
            name, data = last_event(client, run_id)
            assert name == "run.cancelled"
            assert "send timeout" in data["reason"] and f"{SEND_TIMEOUT} s" in data["reason"]
            print(f"{reader}: cancelled {latency:.2f} s after the request "
                  f"(send_timeout {SEND_TIMEOUT} s); {produced} of {TOTAL} events produced")
            # Nothing more is produced once the run is cancelled.
            time.sleep(0.2)
            assert probe.produced == produced
        finally:
            stop.set()
            if trickle is not None:
                trickle.join(timeout=5)
            sock.close()


def test_a_reader_that_keeps_up_is_never_cut(rt: Runtime) -> None:
    probe = Probe()
    with serve(make_app(rt, probe)) as base, httpx.Client(base_url=base, timeout=30) as client:
        with connect_sse(client, "GET", "/chat/keeps-up") as source:
            events = list(source.iter_sse())
        assert sum(e.event == "message" for e in events) == TOTAL
        assert events[-1].event == "run.completed"
