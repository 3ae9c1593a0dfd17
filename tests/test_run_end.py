"""A run always ends: its terminal event, the end of its channel and its record happen whatever
fails before them (issue 10, items 1 and 2)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    Limits,
    RunLog,
    Runtime,
    Sink,
    hookimpl,
)
from runstream._store_memory import MemoryStore
from runstream_async_python import AsyncPythonTask

from examples.fastapi_llm.main import create_app
from tests._server import serve

LONE = "\ud800"


async def echo(prompt: str) -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "chunk", "text": prompt}
    yield {"type": "done", "full_text": prompt}


ECHO = AsyncPipeline("echo", [AsyncPythonTask(name="llm", function=echo)])


async def _events(handle: Any) -> list[Any]:
    async def read() -> list[Any]:
        return [e async for e in handle]
    # A guard against a hang (the defect), not a measurement.
    return await asyncio.wait_for(read(), 30)


async def test_lone_surrogate_parameter_is_stored_and_the_run_ends(tmp_path: Path) -> None:
    runtime = Runtime(Config(run_log_store=ComponentConfig(
        type="sqlite", path=str(tmp_path / "runs.db"))))
    try:
        handle = ECHO.stream(parameters={"prompt": "a" + LONE}, run_id="lone-1", config=runtime)
        events = await _events(handle)
        assert events[-1].type == "run.completed"
        assert not [e for e in events if e.type == "run.warning"]
        # The task saw the text it was given; the store keeps what UTF-8 can hold.
        chunks = [e.data["text"] for e in events if e.data.get("type") == "chunk"]
        assert chunks == ["a" + LONE]
        stored = await runtime.store.get("lone-1")
        assert stored.status == "completed"
        assert stored.parameters == {"prompt": "a\ufffd"}
        # The event as JSON (file and stdout sinks) does not fail either.
        assert json.loads(events[1].to_json())["run_id"] == "lone-1"
    finally:
        await runtime.aclose()


def test_lone_surrogate_chat_does_not_wedge_the_server(tmp_path: Path) -> None:
    """Three such chats with max_concurrent_runs 2: each ends, is stored, and frees its slot."""
    config = Config(run_log_store=ComponentConfig(type="sqlite", path=str(tmp_path / "r.db")),
                    limits=Limits(max_concurrent_runs=2))
    body = b'{"prompt": "\\ud800 hello"}'
    with serve(create_app(config=config, delay_scale=0)) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(3):
            with client.stream("POST", "/chat", content=body,
                               headers={"Content-Type": "application/json"}) as response:
                assert response.status_code == 200
                run_id = response.headers["x-run-id"]
                text = "".join(response.iter_text())
            assert "event: run.completed" in text
            run = client.get(f"/runs/{run_id}")
            assert run.status_code == 200 and run.json()["status"] == "completed"
        ok = client.post("/chat", json={"prompt": "Hi"})
        assert ok.status_code == 200 and "event: run.completed" in ok.text


class TypeErrorStore(MemoryStore):
    """A store with a bug: its save raises something that is not a StoreError."""

    async def save(self, run_log: RunLog) -> None:
        raise TypeError("a bug in the store")


class SlowSaveStore(MemoryStore):
    """Saves (the end of a run) take far longer than the cancellation grace period."""

    async def save(self, run_log: RunLog) -> None:
        await asyncio.sleep(30)


class BadSink(Sink):
    def for_run(self) -> Sink:
        raise RuntimeError("cannot make a sink for this run")

    async def send(self, event: Any) -> None:  # pragma: no cover - never made
        pass


class _Stores:
    @staticmethod
    @hookimpl
    def register_run_log_stores(register: Any) -> None:
        register("type-error", TypeErrorStore)
        register("slow-save", SlowSaveStore)


class _Plugin(_Stores):
    @staticmethod
    @hookimpl
    def after_run(run_log: RunLog) -> None:
        raise RuntimeError("after_run hook fails")


async def test_the_end_comes_whatever_fails_before_it() -> None:
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="type-error"),
                             limits=Limits(store_save_timeout=0.5, store_retry_period=0.5)),
                      plugins=[_Plugin()], entry_points=False, sinks=[BadSink()])
    try:
        events = await _events(ECHO.stream(parameters={"prompt": "x"}, config=runtime))
        assert events[-1].type == "run.completed"
        warnings = events[-1].data["warnings"]
        assert any("BadSink" in w for w in warnings)
        assert any("after_run" in w for w in warnings)
        assert any("failed to save this run (TypeError" in w for w in warnings)
    finally:
        await runtime.aclose()


async def _block_forever() -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "chunk", "text": "first"}
    await asyncio.Event().wait()


async def test_cancel_while_the_final_save_is_slow() -> None:
    """The store's save outlasts the grace period: cancel() still returns, the reader gets
    run.cancelled, and the warning names the store, not a task."""
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="slow-save"),
                             limits=Limits(cancel_grace_period=0.2, store_save_timeout=1.0)),
                      plugins=[_Stores()], entry_points=False)
    pipeline = AsyncPipeline("p", [AsyncPythonTask(name="s", function=_block_forever)])
    handle = pipeline.stream(config=runtime)
    seen: list[Any] = []

    async def read() -> None:
        async for event in handle:
            seen.append(event)
            if event.type == "step.event":
                await asyncio.wait_for(handle.cancel("client left"), 30)

    await asyncio.wait_for(read(), 30)
    assert seen[-1].type == "run.cancelled" and seen[-1].data["reason"] == "client left"
    warnings = seen[-1].data["warnings"]
    assert any("store had not saved" in w for w in warnings)
    assert not any("ignores cancellation" in w for w in warnings)
    assert handle.done()
    await asyncio.wait_for(runtime.aclose(), 30)


async def test_shutdown_with_a_slow_store_finishes() -> None:
    """The SSE side: RunsInFlight.shutdown() with a run whose final save hangs returns, the
    stream gets its end and the run's slot is free (item 2: SIGTERM never finished)."""
    from fastapi import FastAPI
    from runstream_sse import SSE, RunsInFlight

    runtime = Runtime(Config(run_log_store=ComponentConfig(type="slow-save"),
                             limits=Limits(cancel_grace_period=0.2, max_concurrent_runs=1)),
                      plugins=[_Stores()], entry_points=False)
    pipeline = AsyncPipeline("p", [AsyncPythonTask(name="s", function=_block_forever)])
    sse = SSE(runtime)
    inflight = RunsInFlight.for_runtime(runtime)
    app = FastAPI()

    @app.post("/go")
    async def go() -> Any:
        return sse.response(pipeline)

    @app.post("/shutdown")
    async def shutdown() -> dict[str, int]:
        await inflight.shutdown("shutdown", grace_period=5.0)
        return {"runs": len(inflight), "streams": inflight.streams}

    with serve(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client, \
                client.stream("POST", "/go") as response:
            lines = response.aiter_lines()
            async for line in lines:
                if line.startswith("data:"):
                    break
            done = await client.post("/shutdown")
            rest = [line async for line in lines]
    assert done.json() == {"runs": 0, "streams": 0}
    assert "event: run.cancelled" in rest
    await asyncio.wait_for(runtime.aclose(), 30)
