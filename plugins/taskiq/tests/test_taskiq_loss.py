"""Workers lost at the worst moments, as real processes (redis-server, PostgreSQL, uvicorn,
``runstream worker``): a worker killed between taking a message and starting its run, and a
worker killed mid-run of a pipeline that opts into re-running."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from runstream import AsyncPipeline, PipelineDefinitionError, load_pipeline
from runstream_async_python import AsyncPythonTask

from tests._cluster import example_cluster
from tests._mock_llm_plan import plan_events
from tests.test_example_fastapi import read_events

from ._taskiq_cluster import Shared, start_worker, wait_until, workers
from .taskiq_pipelines import _slow
from .test_taskiq_cluster import TIMEOUT, messages, runs_ls, start_app


def test_a_run_taken_by_a_worker_killed_before_starting_it_runs_on_another(
        shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    hold = tmp_path / "hold"
    hold.mkdir()
    prompt = "Taken, then lost"
    held = start_worker(shared, config, tmp_path, hold=hold)
    try:
        with example_cluster(tmp_path, config, 1) as (web,), \
                httpx.Client(base_url=web.url, timeout=TIMEOUT) as client, \
                client.stream("POST", "/chat", json={"prompt": prompt}) as response:
            run_id = response.headers["x-run-id"]
            wait_until((hold / f"{run_id}.taken").exists)  # taken from the queue, not started
            assert run_id in runs_ls(config, tmp_path, "queued")
            with workers(shared, config, tmp_path, 1):
                held.kill(signal.SIGKILL)
                events = list(read_events(response))
                assert events[-1].event == "run.completed"
                assert messages(events) == plan_events(prompt)
                assert client.get(f"/runs/{run_id}").json()["status"] == "completed"
            for status in ("queued", "running"):
                assert run_id not in runs_ls(config, tmp_path, status)
    finally:
        held.stop()


def test_a_run_taken_and_lost_twice_before_starting_ends_worker_lost(
        shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    hold = tmp_path / "hold"
    hold.mkdir()
    first = start_worker(shared, config, tmp_path, hold=hold)
    second = None
    try:
        with example_cluster(tmp_path, config, 1) as (web,), \
                httpx.Client(base_url=web.url, timeout=TIMEOUT) as client, \
                client.stream("POST", "/chat", json={"prompt": "unlucky"}) as response:
            run_id = response.headers["x-run-id"]
            marker = hold / f"{run_id}.taken"
            wait_until(marker.exists)
            marker.unlink()
            second = start_worker(shared, config, tmp_path, hold=hold)
            first.kill(signal.SIGKILL)
            wait_until(marker.exists)  # put back on the queue once; the second one took it
            with workers(shared, config, tmp_path, 1):
                second.kill(signal.SIGKILL)
                events = list(read_events(response))
            assert events[-1].event == "run.failed"
            assert events[-1].json()["error_type"] == "WorkerLost"
            run = client.get(f"/runs/{run_id}").json()
            assert run["status"] == "failed" and run["error"]["type"] == "WorkerLost"
            for status in ("queued", "running"):
                assert run_id not in runs_ls(config, tmp_path, status)
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_a_worker_stopped_with_sigterm_puts_back_a_run_it_took_and_did_not_start(
        shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    hold = tmp_path / "hold"
    hold.mkdir()
    prompt = "Handed back"
    held = start_worker(shared, config, tmp_path, hold=hold, grace_period=0.5)
    try:
        with example_cluster(tmp_path, config, 1) as (web,), \
                httpx.Client(base_url=web.url, timeout=TIMEOUT) as client, \
                client.stream("POST", "/chat", json={"prompt": prompt}) as response:
            run_id = response.headers["x-run-id"]
            wait_until((hold / f"{run_id}.taken").exists)
            with workers(shared, config, tmp_path, 1):
                assert held.stop() == 0  # SIGTERM: it goes, its taken message back on the queue
                events = list(read_events(response))
            assert events[-1].event == "run.completed"
            assert messages(events) == plan_events(prompt)
    finally:
        held.stop()


def test_a_pipeline_that_opts_in_is_rerun_when_its_worker_is_lost(
        shared: Shared, tmp_path: Path) -> None:
    config = shared.config(tmp_path)
    count = 40
    with workers(shared, config, tmp_path, 2) as pool:
        app = start_app(tmp_path, config)
        try:
            with httpx.Client(base_url=app.url, timeout=TIMEOUT) as client:
                with client.stream("POST", "/rerun", params={"count": count}) as response:
                    run_id = response.headers["x-run-id"]
                    events = []
                    stream = read_events(response)
                    for event in stream:
                        events.append(event)
                        if event.event == "message" and event.json()["i"] == 5:
                            pid = shared.holder_pid(run_id)
                            (victim,) = [w for w in pool if w.proc.pid == pid]
                            victim.kill(signal.SIGKILL)
                            break
                    events.extend(stream)
                run = client.get(f"/runs/{run_id}").json()
        finally:
            app.stop()
    # The stream went on (every event, with lifecycle ones): the restart marker, then the second
    # attempt from its start.
    seqs = [int(e.id or 0) for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # no duplicate, no gap
    restarts = [e for e in events if e.event == "run.restarted"]
    assert [(e.json()["attempt"], e.json()["attempts"]) for e in restarts] == [(2, 2)]
    assert [e.event for e in events].count("run.started") == 2
    after = events[events.index(restarts[0]) + 1:]
    assert after[0].event == "run.started"
    assert [e.json()["i"] for e in after if e.event == "message"] == list(range(count))
    assert events[-1].event == "run.completed"
    assert run["status"] == "completed"
    assert any("attempt 2 of 2" in w for w in run["warnings"])


def test_rerun_on_worker_loss_is_checked_and_read_from_yaml(tmp_path: Path) -> None:
    steps = [AsyncPythonTask(name="ticks", function=_slow)]
    assert AsyncPipeline("p", steps).rerun_on_worker_loss == 0
    for wrong in (-1, 11, 1.5, True, "1"):
        with pytest.raises(PipelineDefinitionError, match="rerun_on_worker_loss must be"):
            AsyncPipeline("p", steps, rerun_on_worker_loss=wrong)  # type: ignore[arg-type]
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nrerun_on_worker_loss: 2\nsteps:\n"
                    "  - {name: s, type: mock-llm, prompt_parameter: prompt}\n", encoding="utf-8")
    assert load_pipeline(path).rerun_on_worker_loss == 2
    path.write_text(path.read_text().replace(": 2", ": many"), encoding="utf-8")
    with pytest.raises(PipelineDefinitionError, match=r"p\.yaml.*rerun_on_worker_loss"):
        load_pipeline(path)
