"""The step lifecycle (runstream._steps): a task that does not produce what its step declares
fails once, with a clear error, however the step is retried (issue 11)."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from runstream import AsyncPipeline, Retry, RunFailedError, Runtime, current_task_context
from runstream_async_python import AsyncPythonTask


async def test_a_missing_declared_return_is_not_retried(runtime: Runtime) -> None:
    calls = 0

    async def answer() -> AsyncGenerator[dict[str, Any], None]:
        nonlocal calls
        calls += 1
        yield {"type": "chunk", "text": "hello"}  # never the declared full_text

    pipeline = AsyncPipeline("p", [AsyncPythonTask(
        name="llm", function=answer, returns=["full_text"],
        retry=Retry(max_attempts=5, delay=0, retry_on=["TaskError", "RunstreamError"]))])
    with pytest.raises(RunFailedError) as failed:
        await pipeline.execute(config=runtime)
    assert calls == 1
    log = failed.value.run_log
    assert log.error is not None and log.error.type == "ReturnsError"
    assert log.error.message.startswith(
        "step 'llm' declares returns ['full_text'] but its generator never yielded a "
        "{'type': 'done', ...} dict")
    assert len(log.steps["llm"].attempts) == 1
    assert log.steps["llm"].attempts[0].status == "failed"


async def test_a_coroutine_without_its_declared_returns_fails_once(runtime: Runtime) -> None:
    calls = 0

    async def answer() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"text": "hello"}

    pipeline = AsyncPipeline("p", [AsyncPythonTask(
        name="llm", function=answer, returns=["full_text", "usage"],
        retry=Retry(max_attempts=3, delay=0))])
    with pytest.raises(RunFailedError) as failed:
        await pipeline.execute(config=runtime)
    assert calls == 1
    error = failed.value.run_log.error
    assert error is not None and error.type == "ReturnsError"
    assert "declares returns ['full_text', 'usage']" in error.message


_caller_var: contextvars.ContextVar[str] = contextvars.ContextVar("caller_var", default="unset")


async def test_a_task_sees_its_callers_context_and_its_own_step_and_leaks_nothing(
        runtime: Runtime) -> None:
    # What a task sees of contextvars: the caller's values as they were when the run started,
    # its own step through current_task_context() (each step its own), and nothing it sets
    # reaches the caller or the next run.
    seen: list[tuple[str, str, str]] = []

    async def first() -> AsyncGenerator[dict[str, Any], None]:
        seen.append((_caller_var.get(), current_task_context().step, "first"))
        _caller_var.set("set by the task")
        yield {"type": "chunk"}

    async def second() -> dict[str, Any]:
        seen.append((_caller_var.get(), current_task_context().step, "second"))
        return {}

    pipeline = AsyncPipeline("p", [AsyncPythonTask(name="one", function=first),
                                   AsyncPythonTask(name="two", function=second)])
    token = _caller_var.set("the caller's")
    try:
        await pipeline.execute(config=runtime)
        handle = pipeline.stream(config=runtime)
        async for _ in handle:
            pass
        assert _caller_var.get() == "the caller's"
    finally:
        _caller_var.reset(token)
    with pytest.raises(LookupError):
        current_task_context()
    assert seen == [("the caller's", "one", "first"), ("set by the task", "two", "second")] * 2
