"""Web processes (uvicorn, the example app) and workers (``runstream worker``) as real
processes sharing redis-server and PostgreSQL: the ``taskiq`` executor across processes."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from tests._cluster import Server, example_cluster, free_port
from tests._mock_llm_plan import plan_events
from tests.test_example_fastapi import read_events

from ._taskiq_cluster import HERE, Shared, child_env, workers

TIMEOUT = httpx.Timeout(30.0)


def messages(events: list[Any]) -> list[dict[str, Any]]:
    return [e.json() for e in events if e.event == "message"]


def test_kill_web_a_after_5_events_and_resume_on_b(shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    prompt = "Resume me elsewhere"
    with workers(shared, config, tmp_path, 2, delay_scale=1.0), \
            example_cluster(tmp_path, config, 2, delay_scale=1.0) as (a, b):
        with httpx.Client(base_url=a.url, timeout=TIMEOUT) as client:
            with client.stream("POST", "/chat", json={"prompt": prompt}) as response:
                assert response.status_code == 200
                run_id = response.headers["x-run-id"]
                first = []
                for event in read_events(response):
                    first.append(event)
                    if len(first) == 5:
                        a.kill(signal.SIGKILL)
                        break
            session = dict(client.cookies)
        with httpx.Client(base_url=b.url, timeout=TIMEOUT, cookies=session) as client:
            with client.stream("GET", f"/runs/{run_id}/events",
                               headers={"Last-Event-ID": first[-1].id or ""}) as response:
                assert response.status_code == 200
                rest = list(read_events(response))
            with client.stream("GET", f"/runs/{run_id}/events") as response:
                replay = list(read_events(response))
            # No gap, no duplicate: the two halves are the whole run, as B replays it.
            assert [(e.id, e.data) for e in first + rest] == [(e.id, e.data) for e in replay]
            assert rest[-1].event == "run.completed"
            assert messages(first + rest) == plan_events(prompt)
            assert client.get(f"/runs/{run_id}").json()["status"] == "completed"


def test_killing_the_worker_ends_every_stream_with_worker_lost(shared: Shared,
                                                               tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    with workers(shared, config, tmp_path, 1, delay_scale=20.0) as (worker,), \
            example_cluster(tmp_path, config, 2, delay_scale=20.0) as (a, b), \
            httpx.Client(base_url=a.url, timeout=TIMEOUT) as ca:
        with ca.stream("POST", "/chat", json={"prompt": "doomed"}) as response:
            run_id = response.headers["x-run-id"]
            events = read_events(response)
            first = next(events)
            with httpx.Client(base_url=b.url, timeout=TIMEOUT,
                              cookies=dict(ca.cookies)) as cb, \
                    cb.stream("GET", f"/runs/{run_id}/events",
                              headers={"Last-Event-ID": first.id or ""}) as other:
                assert other.status_code == 200
                worker.kill(signal.SIGKILL)
                killed = time.monotonic()
                on_a = list(events)
                on_b = list(read_events(other))
                ended = time.monotonic() - killed
        for stream in (on_a, on_b):
            assert stream[-1].event == "run.failed"
            assert stream[-1].json()["error_type"] == "WorkerLost"
        assert ended < shared.lease * 4 + 5  # the lease, checked every third of it
        run = ca.get(f"/runs/{run_id}").json()
        assert run["status"] == "failed" and run["error"]["type"] == "WorkerLost"
        assert run_id not in runs_ls(config, tmp_path, "running")  # no run stays running


def runs_ls(config: Path, cwd: Path, status: str) -> str:
    """``runstream runs ls --status STATUS --json``'s output."""
    command = [str(Path(sys.executable).with_name("runstream")), "runs", "ls", "--config",
               str(config), "--json", *(["--status", status] if status else [])]
    ls = subprocess.run(command,
                        env=child_env(), capture_output=True, text=True, timeout=60, cwd=cwd)
    assert ls.returncode == 0, ls.stderr
    return ls.stdout


def start_app(tmp_path: Path, config: Path) -> Server:
    port = free_port()
    log = tmp_path / f"app-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "taskiq_app:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=HERE, env=child_env(RUNSTREAM_CONFIGURATION_FILE=str(config)), stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(proc, port, log)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{server.url}/", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the app did not start: {log.read_text(errors='replace')}")
        time.sleep(0.05)  # polling its port, with a deadline


def test_a_disconnect_cancels_the_task_on_the_worker(shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    marker = tmp_path / "finally.txt"
    with workers(shared, config, tmp_path, 2):
        app = start_app(tmp_path, config)
        try:
            with httpx.Client(base_url=app.url, timeout=TIMEOUT) as client:
                with client.stream("POST", "/slow", params={"marker": str(marker)}) as response:
                    run_id = response.headers["x-run-id"]
                    for event in read_events(response):
                        if event.event == "message" and event.json()["i"] == 5:
                            break  # the client goes away
                deadline = time.monotonic() + 20
                status = client.get(f"/runs/{run_id}").json()["status"]
                while status != "cancelled" and time.monotonic() < deadline:
                    time.sleep(0.05)  # polling the run log, with a deadline
                    status = client.get(f"/runs/{run_id}").json()["status"]
                assert status == "cancelled"
                assert marker.read_text() == "finally ran"  # the task's finally, on a worker
        finally:
            app.stop()


def test_no_live_worker_answers_503_with_retry_after(shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    with example_cluster(tmp_path, config, 1) as (web,):
        response = httpx.post(f"{web.url}/chat", json={"prompt": "anyone?"}, timeout=TIMEOUT)
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0
        assert "no live worker" in response.json()["detail"]


async def test_200_concurrent_chats_over_2_web_and_2_workers(shared: Shared,
                                                             tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    prompts = [f"Question {i}: what is {i} squared?" for i in range(200)]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    with workers(shared, config, tmp_path, 2, concurrency=100, delay_scale=0.2), \
            example_cluster(tmp_path, config, 2, delay_scale=0.2) as webs:

        async def chat(client: httpx.AsyncClient, prompt: str) -> list[dict[str, Any]]:
            async with aconnect_sse(client, "POST", "/chat", json={"prompt": prompt}) as source:
                assert source.response.status_code == 200
                return [json.loads(sse.data) async for sse in source.aiter_sse()
                        if sse.event == "message"]

        clients = [httpx.AsyncClient(base_url=w.url, timeout=TIMEOUT, limits=limits)
                   for w in webs]
        try:
            results = await asyncio.wait_for(asyncio.gather(
                *(chat(clients[i % 2], p) for i, p in enumerate(prompts))), timeout=120)
        finally:
            for client in clients:
                await client.aclose()
    for prompt, events in zip(prompts, results, strict=True):
        assert events == plan_events(prompt)


def test_runs_ls_shows_queued_runs(shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    with workers(shared, config, tmp_path, 1, concurrency=1, delay_scale=20.0), \
            example_cluster(tmp_path, config, 1, delay_scale=20.0) as (web,), \
            httpx.Client(base_url=web.url, timeout=TIMEOUT) as client, \
            client.stream("POST", "/chat", json={"prompt": "busy"}) as busy:
        busy_events = read_events(busy)  # kept: a closed reader closes the stream
        next(busy_events)  # the one worker slot is taken
        with client.stream("POST", "/chat", json={"prompt": "waiting"}) as waiting:
            queued = waiting.headers["x-run-id"]
            deadline = time.monotonic() + 20
            while True:
                listed = runs_ls(config, tmp_path, "queued")
                if queued in listed or time.monotonic() > deadline:
                    break
                time.sleep(0.05)  # polling the store, with a deadline
            assert queued in listed, runs_ls(config, tmp_path, "")
