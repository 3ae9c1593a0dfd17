"""The pytest plugin shipped with the core: fixtures a plugin author needs."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from runstream import AsyncPipeline, ComponentConfig, Limits, Runtime, hookimpl, load_pipeline
from runstream.testing import (
    CollectingSink,
    RunResult,
    RuntimeFactory,
    memory_config,
    read_jsonl,
    reference_cycles,
    serve,
)
from runstream_async_python import AsyncPythonTask, PythonTask


async def words(prompt: str) -> AsyncGenerator[dict[str, Any], None]:
    for w in prompt.split():
        yield {"type": "chunk", "text": w}
    yield {"type": "done", "full_text": prompt}


@hookimpl
def register_task_types(register: Any) -> None:
    register("words", PythonTask)  # any Task subclass under a name of the plugin's choosing


async def test_fixtures_work_together(runstream_runtime: RuntimeFactory,
                                      collecting_sink: CollectingSink,
                                      run_pipeline: Any) -> None:
    plugin = SimpleNamespace(register_task_types=register_task_types)
    runtime: Runtime = runstream_runtime(plugin, sinks=[collecting_sink])
    # Only the given plugin (and built-ins) is registered: no entry points.
    assert runtime.plugins.task_types.names() == ["words"]
    pipeline = AsyncPipeline("p", [AsyncPythonTask(name="llm", function=words,
                                                   returns=["full_text"])])
    result: RunResult = await run_pipeline(pipeline, {"prompt": "a b"}, runtime=runtime)
    assert result.status == "completed"
    assert result.data == [{"type": "chunk", "text": "a"}, {"type": "chunk", "text": "b"},
                           {"type": "done", "full_text": "a b"}]
    assert result.types()[0] == "run.started" and result.types()[-1] == "run.completed"
    # The collecting sink saw the same events as the stream.
    assert [e.seq for e in collecting_sink.events_of(result.run_log.run_id)] == [
        e.seq for e in result.events]
    assert collecting_sink.closed == [(result.run_log.run_id, "completed")]


async def test_plugin_task_type_by_name_in_yaml(runstream_runtime: RuntimeFactory,
                                                run_pipeline: Any, tmp_path: Any) -> None:
    plugin = SimpleNamespace(register_task_types=register_task_types)
    runtime = runstream_runtime(plugin)
    f = tmp_path / "p.yaml"
    f.write_text("name: y\nsteps:\n  - {name: s, type: words, function: 'os.path:basename',"
                 " returns: [base]}\n")
    result = await run_pipeline(load_pipeline(f, runtime), {"p": "/x/y.txt"},
                                runtime=runtime)
    assert result.run_log.steps["s"].attempts[0].output_parameters == {"base": "y.txt"}


async def test_failed_runs_are_results_not_exceptions(runstream_runtime: RuntimeFactory,
                                                      run_pipeline: Any) -> None:
    async def boom() -> None:
        raise KeyError("k")

    runtime = runstream_runtime()
    result = await run_pipeline(AsyncPipeline("b", [AsyncPythonTask(name="b", function=boom)]),
                                runtime=runtime)
    assert result.status == "failed"
    assert result.events[-1].data["error_type"] == "KeyError"


def test_runstream_cwd_is_empty_and_free_of_runstream_variables(
        runstream_cwd: Path, tmp_path: Path) -> None:
    assert Path.cwd() == runstream_cwd == tmp_path
    assert list(runstream_cwd.iterdir()) == []
    assert not [name for name in os.environ if name.startswith("RUNSTREAM_")]


def test_read_jsonl_reads_every_line_and_skips_blank_ones(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text('{"seq": 1}\n\n{"seq": 2, "text": "é"}\n', encoding="utf-8")
    assert read_jsonl(f) == [{"seq": 1}, {"seq": 2, "text": "é"}]
    assert read_jsonl(str(f))[0] == {"seq": 1}


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello " + scope["path"].encode()})


def test_serve_runs_a_real_server_on_loopback_and_stops_it() -> None:
    before = set(threading.enumerate())
    with serve(_hello) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        response = httpx.get(f"{base_url}/x", timeout=5)
        assert (response.status_code, response.text) == (200, "hello /x")
    # Stopped and its thread joined: the port refuses connections, no thread is left behind.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/x", timeout=5)
    assert set(threading.enumerate()) <= before


def test_serve_says_when_the_app_cannot_start() -> None:
    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="uvicorn did not start"), serve(broken):
        pass
    assert set(threading.enumerate()) <= before


def test_memory_config_takes_sinks_as_in_the_config_file() -> None:
    config = memory_config({"type": "file", "path": "ev/{run_id}.jsonl"},
                           ComponentConfig(type="stdout"), limits=Limits(cancel_grace_period=0.5))
    assert config.run_log_store.type == "memory"
    assert [s.type for s in config.sinks] == ["file", "stdout"]
    assert config.sinks[0].model_extra == {"path": "ev/{run_id}.jsonl"}
    assert config.limits.cancel_grace_period == 0.5
    assert memory_config().sinks == []


class Holder:
    """A plugin's object that keeps its own bound method: a reference cycle."""

    def __init__(self) -> None:
        self.callback = self.method

    def method(self) -> None:
        pass


def test_reference_cycles_reports_what_the_block_left_in_cycles_of_the_named_modules() -> None:
    older = Holder()  # made before the block: never reported, even once it is garbage there
    with reference_cycles(Holder.__module__) as cycles:
        Holder()
        del older
        plain = Holder.__new__(Holder)  # no cycle: freed by reference counting
        del plain
    assert cycles == [f"{Holder.__module__}.Holder"]
    with reference_cycles() as ours_only:  # runstream's modules only
        Holder()
    assert ours_only == []
    assert gc.get_debug() == 0 and gc.garbage == []
