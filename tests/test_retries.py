"""Retry on task steps: attempts in the run log, step.retrying events, backoff, retry_on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from pydantic import ValidationError
from runstream import EVENT_TYPES, AsyncPipeline, Parallel, Retry, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_mock_llm import MockLLMTask

from tests._nodes_util import of_type, run_events, task_dicts, terminal

NO_WAIT = {"delay": 0.0, "max_delay": 0.0}


class Flaky:
    """An async generator function that fails its first `failures` calls midway."""

    def __init__(self, failures: int, error: type[Exception] = RuntimeError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def run(self) -> AsyncGenerator[dict[str, Any], None]:
        self.calls += 1
        yield {"type": "chunk", "text": f"try {self.calls} "}
        if self.calls <= self.failures:
            raise self.error(f"flake {self.calls}")
        yield {"type": "done", "text": f"ok after {self.calls}"}


def one_step(flaky: Flaky, retry: Retry | None) -> AsyncPipeline:
    return AsyncPipeline("retry", [AsyncPythonTask(name="llm", function=flaky.run,
                                                   returns=["text"], retry=retry)])


def test_step_retrying_is_an_event_type() -> None:
    assert "step.retrying" in EVENT_TYPES


async def test_fails_twice_then_succeeds(runtime: Runtime) -> None:
    flaky = Flaky(failures=2)
    events, log = await run_events(one_step(flaky, Retry(max_attempts=3, **NO_WAIT)), runtime)
    assert terminal(events) == ["run.completed"]
    step = [(e.type, e.data.get("attempt"), e.data.get("text")) for e in events
            if e.step == "llm"]
    assert step == [
        ("step.started", 1, None), ("step.event", None, "try 1 "),
        ("step.retrying", 1, None),
        ("step.started", 2, None), ("step.event", None, "try 2 "),
        ("step.retrying", 2, None),
        ("step.started", 3, None), ("step.event", None, "try 3 "),
        ("step.event", None, "ok after 3"),
        ("step.completed", None, None),
    ]
    retrying = of_type(events, "step.retrying")[0].data
    assert retrying == {"attempt": 1, "next_attempt": 2, "delay": 0.0,
                        "error_type": "RuntimeError", "message": "flake 1"}
    attempts = log.steps["llm"].attempts
    assert [(a.n, a.status, a.message) for a in attempts] == [
        (1, "failed", "RuntimeError: flake 1"), (2, "failed", "RuntimeError: flake 2"),
        (3, "completed", None)]
    for attempt in attempts:
        assert attempt.end is not None and attempt.start <= attempt.end
    assert attempts[0].end is not None and attempts[0].end <= attempts[1].start
    assert attempts[2].output_parameters == {"text": "ok after 3"}
    assert log.steps["llm"].status == "completed"


async def test_exhausted_attempts_fail_the_step_once(runtime: Runtime) -> None:
    flaky = Flaky(failures=5)
    events, log = await run_events(one_step(flaky, Retry(max_attempts=2, **NO_WAIT)), runtime)
    assert flaky.calls == 2
    assert terminal(events) == ["run.failed"]
    assert len(of_type(events, "step.retrying")) == 1
    assert len(of_type(events, "step.failed")) == 1
    assert [a.status for a in log.steps["llm"].attempts] == ["failed", "failed"]
    assert log.error is not None and log.error.message == "flake 2"


async def test_without_retry_a_step_runs_once(runtime: Runtime) -> None:
    flaky = Flaky(failures=1)
    events, log = await run_events(one_step(flaky, None), runtime)
    assert flaky.calls == 1
    assert of_type(events, "step.retrying") == []
    assert len(log.steps["llm"].attempts) == 1


@pytest.mark.parametrize(("retry_on", "error", "calls"), [
    (["ValueError"], RuntimeError, 1),
    (["RuntimeError"], RuntimeError, 2),
    ([RuntimeError], RuntimeError, 2),
    (["LookupError"], KeyError, 2),  # a base class's name matches
    (["builtins.KeyError"], KeyError, 2),
    ([ConnectionError, "TimeoutError"], TimeoutError, 2),
    ([ConnectionError], TimeoutError, 1),
])
async def test_retry_on_picks_the_errors(runtime: Runtime, retry_on: list[Any],
                                         error: type[Exception], calls: int) -> None:
    flaky = Flaky(failures=1, error=error)
    retry = Retry(max_attempts=3, retry_on=retry_on, **NO_WAIT)
    await run_events(one_step(flaky, retry), runtime)
    assert flaky.calls == calls


async def test_missing_parameters_are_not_retried_by_default(runtime: Runtime) -> None:
    calls = 0

    async def needs(prompt: str) -> str:
        nonlocal calls
        calls += 1
        return prompt

    p = AsyncPipeline("p", [AsyncPythonTask(name="t", function=needs, returns=["x"],
                                            retry=Retry(max_attempts=3, **NO_WAIT))])
    _, log = await run_events(p, runtime)
    assert calls == 0
    assert len(log.steps["t"].attempts) == 1
    assert log.error is not None and log.error.type == "ParameterError"


async def test_retries_inside_a_parallel_branch(runtime: Runtime) -> None:
    flaky = Flaky(failures=1)
    p = AsyncPipeline("p", [Parallel("fan", branches={"a": [
        AsyncPythonTask(name="llm", function=flaky.run, returns=["text"],
                        retry=Retry(max_attempts=2, **NO_WAIT))]})])
    events, log = await run_events(p, runtime)
    assert [e.step for e in of_type(events, "step.retrying")] == ["fan.a.llm"]
    assert log.steps["fan"].attempts[0].output_parameters == {"a__text": "ok after 2"}


async def test_mock_llm_fail_after_is_retried_and_each_attempt_streams(
        runtime: Runtime) -> None:
    llm = MockLLMTask(name="llm", response="one two three four", fail_after=2,
                      thinking_delay=0, generating_delay=0, tokens_per_second=0,
                      retry=Retry(max_attempts=3, retry_on=["RuntimeError"], **NO_WAIT))
    events, log = await run_events(AsyncPipeline("mock", [llm]), runtime, {"prompt": "hi"})
    assert terminal(events) == ["run.failed"]
    chunks = [d["text"] for d in task_dicts(events, "llm") if d["type"] == "chunk"]
    assert chunks == ["one ", "two "] * 3
    # A client resets the step's partial output at each step.retrying.
    shown: list[str] = []
    for e in events:
        if e.type == "step.retrying":
            shown.clear()
        elif e.type == "step.event" and e.data["type"] == "chunk":
            shown.append(e.data["text"])
    assert shown == ["one ", "two "]
    assert [a.status for a in log.steps["llm"].attempts] == ["failed"] * 3
    assert [e.data["next_attempt"] for e in of_type(events, "step.retrying")] == [2, 3]


async def test_cancelled_during_backoff(runtime: Runtime) -> None:
    flaky = Flaky(failures=5)
    handle = one_step(flaky, Retry(max_attempts=5, delay=30, backoff="fixed")).stream(
        config=runtime)
    async for event in handle:
        if event.type == "step.retrying":
            assert event.data["delay"] == 30
            await handle.cancel()
    log = await handle.result()
    assert log.status == "cancelled"
    assert log.steps["llm"].status == "cancelled"
    assert [a.status for a in log.steps["llm"].attempts] == ["failed"]


def test_pause_fixed_exponential_capped() -> None:
    fixed = Retry(backoff="fixed", delay=2, max_delay=10)
    assert [fixed.pause(n) for n in (1, 2, 5)] == [2, 2, 2]
    exp = Retry(backoff="exponential", delay=1, max_delay=10)
    assert [exp.pause(n) for n in (1, 2, 3, 4, 5, 50)] == [1, 2, 4, 8, 10, 10]


def test_jitter_stays_between_half_and_all() -> None:
    retry = Retry(backoff="exponential", delay=1, max_delay=10, jitter=True)
    for n in (1, 3, 10):
        base = min(2 ** (n - 1), 10)
        for _ in range(50):
            assert base / 2 <= retry.pause(n) <= base


def test_should_retry_counts_attempts() -> None:
    retry = Retry(max_attempts=3)
    assert retry.should_retry(RuntimeError(), 1)
    assert retry.should_retry(RuntimeError(), 2)
    assert not retry.should_retry(RuntimeError(), 3)
    assert not retry.should_retry(asyncio.CancelledError(), 1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_attempts": 0}, "greater than or equal to 1"),
    ({"delay": 5, "max_delay": 1}, "max_delay"),
    ({"backoff": "linear"}, "'fixed' or 'exponential'"),
    ({"retry_on": ["not a name"]}, "is not an exception name"),
    ({"retry_on": [int]}, "Input should be a subclass of BaseException"),
    ({"retry_on": [asyncio.CancelledError]}, "CancelledError is not an Exception subclass"),
    ({"tries": 3}, "Extra inputs are not permitted"),
])
def test_invalid_retry(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Retry(**kwargs)


def test_retry_is_a_field_of_every_task_and_serialises_classes_by_name() -> None:
    task = AsyncPythonTask.model_validate({
        "name": "t", "function": "asyncio:sleep",
        "retry": {"max_attempts": 4, "retry_on": ["RuntimeError"]}})
    assert task.retry == Retry(max_attempts=4, retry_on=["RuntimeError"])
    assert AsyncPythonTask(name="t", function=asyncio.sleep).retry is None
    dumped = Retry(retry_on=[TimeoutError, json.JSONDecodeError]).model_dump(mode="json")
    assert dumped["retry_on"] == ["TimeoutError", "json.decoder.JSONDecodeError"]
