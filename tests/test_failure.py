"""A failing step: its earlier events are delivered, then step.failed and run.failed."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest
from runstream import AsyncPipeline, RunFailedError, RunstreamError, Runtime, TaskError
from runstream_async_python import AsyncPythonTask


async def fails_after(n: int) -> AsyncGenerator[dict[str, Any], None]:
    for i in range(n):
        yield {"type": "chunk", "text": f"w{i} "}
    raise ConnectionError("upstream model went away")


def pipeline() -> AsyncPipeline:
    return AsyncPipeline("fail", [AsyncPythonTask(name="llm", function=fails_after)])


async def test_events_before_failure_are_delivered_then_failure_in_band(
        runtime: Runtime) -> None:
    handle = pipeline().stream({"n": 7}, run_id="f-1", config=runtime)
    events = [e async for e in handle]
    types = [e.type for e in events]
    assert types.count("step.event") == 7
    assert types[-2:] == ["step.failed", "run.failed"]
    assert types.index("step.failed") > max(i for i, t in enumerate(types) if t == "step.event")
    failed = events[-1].data
    assert failed["error_type"] == "ConnectionError"
    assert failed["message"] == "upstream model went away"
    assert failed["step"] == "llm"
    assert events[-2].step == "llm"


async def test_execute_streaming_yields_everything_then_raises(runtime: Runtime) -> None:
    got: list[dict[str, Any]] = []
    with pytest.raises(RunFailedError) as info:
        async for e in pipeline().execute_streaming({"n": 4}, run_id="f-2", config=runtime):
            got.append(e)
    assert [g["text"] for g in got] == ["w0 ", "w1 ", "w2 ", "w3 "]
    err = info.value
    assert isinstance(err, RunstreamError)
    assert (err.step, err.error_type) == ("llm", "ConnectionError")
    assert err.run_log.status == "failed"


async def test_execute_raises_with_the_run_log_and_the_store_says_failed(
        runtime: Runtime) -> None:
    with pytest.raises(RunFailedError, match="failed in step 'llm'") as info:
        await pipeline().execute({"n": 2}, run_id="f-3", config=runtime)
    assert info.value.run_log.error is not None
    stored = await runtime.store.get("f-3")
    assert stored.status == "failed"
    assert stored.message == "upstream model went away"
    attempt = stored.steps["llm"].attempts[0]
    assert attempt.status == "failed" and attempt.end is not None
    assert "ConnectionError" in (attempt.message or "")


async def test_yielding_a_non_dict_fails_the_step_clearly(runtime: Runtime) -> None:
    async def bad() -> AsyncGenerator[Any, None]:
        yield {"type": "chunk", "text": "ok"}
        yield "not a dict"

    p = AsyncPipeline("bad", [AsyncPythonTask(name="gen", function=bad)])
    got = []
    with pytest.raises(RunFailedError) as info:
        async for e in p.execute_streaming(config=runtime):
            got.append(e)
    assert got == [{"type": "chunk", "text": "ok"}]
    assert info.value.error_type == TaskError.__name__
    assert "emitted a str" in info.value.message and "must be dicts" in info.value.message


async def test_failure_in_second_step_keeps_first_steps_outputs(runtime: Runtime) -> None:
    async def first() -> str:
        return "value"

    async def second(x: str) -> None:
        raise ValueError(f"cannot use {x}")

    p = AsyncPipeline("two", [AsyncPythonTask(name="a", function=first, returns=["x"]),
                              AsyncPythonTask(name="b", function=second)])
    with pytest.raises(RunFailedError, match="cannot use value"):
        await p.execute(run_id="two-1", config=runtime)
    log = await runtime.store.get("two-1")
    assert log.steps["a"].status == "completed"
    assert log.steps["b"].status == "failed"
