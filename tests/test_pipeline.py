"""AsyncPipeline / Pipeline: execute, execute_streaming, stream, returns and parameters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from runstream import (
    TERMINAL_EVENT_TYPES,
    AsyncPipeline,
    ComponentConfig,
    Config,
    Pipeline,
    PipelineDefinitionError,
    RunFailedError,
    RunIdError,
    Runtime,
)
from runstream_async_python import AsyncPythonTask


async def llm(prompt: str) -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "status", "status": "thinking"}
    words = f"You said {prompt}".split()
    for i, word in enumerate(words):
        yield {"type": "chunk", "text": word + (" " if i < len(words) - 1 else "")}
    yield {"type": "done", "full_text": " ".join(words)}


async def shout(full_text: str) -> str:
    return full_text.upper()


def chat() -> AsyncPipeline:
    return AsyncPipeline(name="chat", steps=[
        AsyncPythonTask(name="llm", function=llm, returns=["full_text"]),
        AsyncPythonTask(name="shout", function=shout, returns=["loud"]),
    ])


async def test_execute_streaming_yields_task_dicts_verbatim(runtime: Runtime) -> None:
    events = [e async for e in chat().execute_streaming({"prompt": "hi there"}, config=runtime)]
    assert events == [
        {"type": "status", "status": "thinking"},
        {"type": "chunk", "text": "You "},
        {"type": "chunk", "text": "said "},
        {"type": "chunk", "text": "hi "},
        {"type": "chunk", "text": "there"},
        {"type": "done", "full_text": "You said hi there"},
    ]


async def test_execute_streaming_yields_the_same_objects(runtime: Runtime) -> None:
    sent: list[dict[str, Any]] = []

    async def gen() -> AsyncGenerator[dict[str, Any], None]:
        for i in range(3):
            d = {"i": i, "nested": {"x": [i]}}
            sent.append(d)
            yield d

    p = AsyncPipeline("p", [AsyncPythonTask(name="g", function=gen)])
    got = [e async for e in p.execute_streaming(config=runtime)]
    assert all(a is b for a, b in zip(got, sent, strict=True))


async def test_returns_feed_later_steps_and_the_run_log(runtime: Runtime) -> None:
    log = await chat().execute({"prompt": "yo"}, config=runtime)
    assert log.status == "completed"
    assert log.steps["llm"].attempts[0].output_parameters == {"full_text": "You said yo"}
    assert log.steps["shout"].attempts[0].output_parameters == {"loud": "YOU SAID YO"}
    assert log.steps["shout"].attempts[0].input_parameters["full_text"] == "You said yo"
    stored = await runtime.store.get(log.run_id)
    assert stored.status == "completed" and stored.ended is not None
    assert stored.parameters == {"prompt": "yo"}


async def test_stream_gives_typed_envelopes(runtime: Runtime) -> None:
    handle = chat().stream({"prompt": "a"}, config=runtime, run_id="my-run-1")
    assert handle.run_id == "my-run-1"
    events = [e async for e in handle]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {e.run_id for e in events} == {"my-run-1"}
    types = [e.type for e in events]
    assert types[0] == "run.started" and types[-1] == "run.completed"
    assert sum(t in TERMINAL_EVENT_TYPES for t in types) == 1
    assert types[1:3] == ["step.started", "step.event"]
    assert [e.step for e in events if e.type == "step.completed"] == ["llm", "shout"]
    assert [e.data for e in events if e.type == "step.event"][-1] == {
        "type": "done", "full_text": "You said a"}
    log = await handle.result()
    assert log.status == "completed"
    json_line = events[2].model_dump_json()
    assert '"type":"step.event"' in json_line and '"seq":3' in json_line


async def test_missing_parameter_fails_the_step_naming_it(runtime: Runtime) -> None:
    with pytest.raises(RunFailedError) as info:
        await chat().execute(config=runtime)
    err = info.value
    assert err.step == "llm" and err.error_type == "ParameterError"
    assert "'prompt'" in err.message and "RUNSTREAM_PRM_prompt" in err.message
    assert err.run_log.status == "failed"
    assert (await runtime.store.get(err.run_log.run_id)).error is not None


async def test_declared_return_missing_from_done_dict(runtime: Runtime) -> None:
    p = AsyncPipeline("p", [AsyncPythonTask(name="llm", function=llm, returns=["answer"])])
    with pytest.raises(RunFailedError, match="no 'answer'"):
        await p.execute({"prompt": "x"}, config=runtime)


async def test_on_failure_step_runs_and_the_run_still_fails(runtime: Runtime) -> None:
    seen: list[str] = []

    async def broken(prompt: str) -> None:
        raise RuntimeError("model down")

    async def report(prompt: str) -> AsyncGenerator[dict[str, Any], None]:
        seen.append(prompt)
        yield {"type": "status", "status": "sorry"}

    p = AsyncPipeline("p", [AsyncPythonTask(name="llm", function=broken)],
                      on_failure=AsyncPythonTask(name="report", function=report))
    handle = p.stream({"prompt": "q"}, config=runtime)
    events = [e async for e in handle]
    types = [(e.type, e.step) for e in events]
    assert ("step.failed", "llm") in types
    assert ("step.event", "report") in types
    assert types[-1] == ("run.failed", None)
    assert events[-1].data["message"] == "model down"
    assert seen == ["q"]
    assert (await handle.result()).status == "failed"


async def test_duplicate_run_id_is_refused_and_first_run_kept(runtime: Runtime) -> None:
    await chat().execute({"prompt": "first"}, run_id="dup", config=runtime)
    with pytest.raises(RunIdError, match="already used"):
        await chat().execute({"prompt": "second"}, run_id="dup", config=runtime)
    with pytest.raises(RunIdError):
        [e async for e in chat().execute_streaming({"prompt": "x"}, run_id="dup",
                                                   config=runtime)]
    assert (await runtime.store.get("dup")).parameters == {"prompt": "first"}


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "x" * 200, "-lead", "a b"])
async def test_malformed_run_ids_are_refused(runtime: Runtime, bad: str) -> None:
    with pytest.raises(RunIdError, match="invalid run id"):
        await chat().execute({"prompt": "x"}, run_id=bad, config=runtime)


def test_pipeline_definition_errors() -> None:
    task = AsyncPythonTask(name="a", function=shout)
    with pytest.raises(PipelineDefinitionError, match="non-empty name"):
        AsyncPipeline("", [task])
    with pytest.raises(PipelineDefinitionError, match="non-empty list"):
        AsyncPipeline("p", [])
    with pytest.raises(PipelineDefinitionError, match="named 'a'"):
        AsyncPipeline("p", [task, AsyncPythonTask(name="a", function=shout)])
    with pytest.raises(PipelineDefinitionError, match=r"steps\[0\] is a function.*AsyncPythonTask"):
        AsyncPipeline("p", [shout])  # type: ignore[list-item]


def test_sync_pipeline_facade(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = Pipeline("chat", [AsyncPythonTask(name="llm", function=llm, returns=["full_text"])])
    log = p.execute({"prompt": "sync"})  # default runtime: sqlite under .runstream/
    assert log.status == "completed"
    assert (tmp_path / ".runstream" / "runstream.db").exists()


async def test_sync_facade_refuses_inside_a_loop() -> None:
    p = Pipeline("chat", [AsyncPythonTask(name="llm", function=llm)])
    with pytest.raises(RuntimeError, match="inside an event loop"):
        p.execute({"prompt": "x"})


async def test_config_object_runtime_is_built_from_it() -> None:
    cfg = Config(run_log_store=ComponentConfig(type="memory"))
    log = await chat().execute({"prompt": "cfg"}, config=cfg)
    assert log.status == "completed"


async def test_execute_cancelled_by_caller_records_cancelled(runtime: Runtime) -> None:
    started = asyncio.Event()

    async def slow(prompt: str) -> None:
        started.set()
        await asyncio.sleep(30)

    p = AsyncPipeline("p", [AsyncPythonTask(name="slow", function=slow)])
    task = asyncio.create_task(p.execute({"prompt": "x"}, run_id="cx", config=runtime))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await runtime.store.get("cx")).status == "cancelled"
