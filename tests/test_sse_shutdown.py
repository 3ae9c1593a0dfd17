"""Stopping the example server: SIGTERM ends every open stream with run.cancelled (reason
"shutdown") and the runs are recorded cancelled; after a SIGKILL the next start marks the runs
left running as abandoned. A real `uvicorn examples.fastapi_llm.main:app` process each time."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

ROOT = Path(__file__).resolve().parents[1]
#: The example's default shutdown_grace_period, and the margin the issue allows on top of it.
GRACE_PERIOD = 5.0
MARGIN = 5.0

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def example_server(cwd: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m uvicorn examples.fastapi_llm.main:app` in ``cwd`` (its sqlite store goes to
    ``cwd/.runstream/runstream.db``) on 127.0.0.1:``port``; killed at the end if still alive."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env["PYTHONPATH"] = str(ROOT)
    log_path = cwd / f"server-{port}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.fastapi_llm.main:app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the example server did not start"
            time.sleep(0.05)
        yield server
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)


async def _open_stream(client: httpx.AsyncClient, prompt: str,
                       started: asyncio.Event, run_ids: list[str]) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    async with aconnect_sse(client, "POST", "/chat", json={"prompt": prompt}) as source:
        run_ids.append(source.response.headers["x-run-id"])
        async for event in source.aiter_sse():
            events.append((event.event, json.loads(event.data)))
            started.set()
    return events


def _runs_with_status(cwd: Path, status: str) -> list[dict[str, Any]]:
    """`runstream runs ls --json --status STATUS` in ``cwd``: what the store holds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("runstream")), "runs", "ls", "--json",
         "--status", status],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=True)
    runs: list[dict[str, Any]] = json.loads(result.stdout)
    return runs


async def test_sigterm_ends_open_streams_with_run_cancelled_shutdown(tmp_path: Path) -> None:
    port = _free_port()
    with example_server(tmp_path, port) as server:
        run_ids: list[str] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     timeout=30) as client:
            started = [asyncio.Event() for _ in range(3)]
            readers = [asyncio.create_task(_open_stream(client, f"question {i}", started[i],
                                                        run_ids))
                       for i in range(3)]
            await asyncio.wait_for(asyncio.gather(*(s.wait() for s in started)), 20)
            assert server.poll() is None
            sent = time.monotonic()
            server.send_signal(signal.SIGTERM)
            results = await asyncio.wait_for(asyncio.gather(*readers), GRACE_PERIOD + MARGIN)
            streams_ended = time.monotonic() - sent
        code = await asyncio.to_thread(server.wait, GRACE_PERIOD + MARGIN)
        exited = time.monotonic() - sent
    for events in results:
        # Each stream: the model's first events, then the in-band end, reason "shutdown".
        assert events[0] == ("message", {"type": "status", "status": "thinking"})
        name, data = events[-1]
        assert name == "run.cancelled", events
        assert data["reason"] == "shutdown"
        assert all(e[0] == "message" for e in events[:-1])
    # uvicorn re-raises the signal it handled once it has shut down cleanly.
    assert code in (0, -signal.SIGTERM), code
    assert exited < GRACE_PERIOD + MARGIN, exited
    print(f"streams ended {streams_ended:.2f} s, process exited {exited:.2f} s after SIGTERM")
    # No run left running; the three are recorded as cancelled.
    assert _runs_with_status(tmp_path, "running") == []
    cancelled = {run["run_id"] for run in _runs_with_status(tmp_path, "cancelled")}
    assert cancelled == set(run_ids)


async def test_after_sigkill_the_next_start_marks_the_run_abandoned(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with example_server(tmp_path, port) as server:
        run_ids: list[str] = []
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            started = asyncio.Event()
            reader = asyncio.create_task(_open_stream(client, "killed", started, run_ids))
            await asyncio.wait_for(started.wait(), 20)
            server.kill()  # SIGKILL: nothing runs in the server any more
            await asyncio.to_thread(server.wait, 10)
            with pytest.raises(httpx.TransportError):
                await asyncio.wait_for(reader, 10)
            session = dict(client.cookies)  # the example's runs are served to their session
    killed = run_ids[0]
    assert [run["run_id"] for run in _runs_with_status(tmp_path, "running")] == [killed]

    with example_server(tmp_path, port) as server:
        async with httpx.AsyncClient(base_url=base, timeout=30, cookies=session) as client:
            new_ids: list[str] = []
            events = await _open_stream(client, "after the restart", asyncio.Event(), new_ids)
            assert events[-1][0] == "run.completed"
            run = (await client.get(f"/runs/{killed}")).json()
            assert run["status"] == "abandoned"
            assert any("abandoned" in warning for warning in run["warnings"])
            assert (await client.get(f"/runs/{new_ids[0]}")).json()["status"] == "completed"
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, GRACE_PERIOD + MARGIN)
