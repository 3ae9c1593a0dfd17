"""The mock-llm task type (plugins/mock-llm)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import runstream_mock_llm
from pydantic import ValidationError
from runstream import (
    AsyncPipeline,
    ParameterError,
    PipelineDefinitionError,
    RunFailedError,
    Runtime,
    load_pipeline,
)
from runstream_mock_llm import VOCABULARY, MockLLMTask

from tests._mock_llm_plan import plan_answer, plan_events

FAST: dict[str, Any] = {"thinking_delay": 0, "generating_delay": 0, "tokens_per_second": 0}


async def collect(pipeline: AsyncPipeline, runtime: Runtime, **parameters: Any
                  ) -> list[dict[str, Any]]:
    return [e async for e in pipeline.execute_streaming(parameters=parameters, config=runtime)]


def test_public_api() -> None:
    assert runstream_mock_llm.__all__ == sorted(runstream_mock_llm.__all__)
    public = {n for n in dir(runstream_mock_llm) if not n.startswith("_")}
    assert public == set(runstream_mock_llm.__all__)
    assert MockLLMTask.__doc__


def test_registered_through_entry_point(runtime: Runtime) -> None:
    assert runtime.plugins.task_types.get("mock-llm") is MockLLMTask


@pytest.mark.parametrize("prompt", [
    "Hello, how are you?",
    "x" * 51,                       # cut to 50 characters + "..."
    "y" * 50,                       # exactly 50: not cut
    "",
    "multi\nline  prompt with {braces} and 'quotes'",
])
async def test_events_match_the_plan(runtime: Runtime, prompt: str) -> None:
    pipeline = AsyncPipeline("chat", [MockLLMTask(name="llm", **FAST)])
    assert await collect(pipeline, runtime, prompt=prompt) == plan_events(prompt)


async def test_returns_full_text_for_later_steps(runtime: Runtime) -> None:
    log = await AsyncPipeline("chat", [MockLLMTask(name="llm", **FAST)]).execute(
        parameters={"prompt": "hi"}, config=runtime)
    assert log.status == "completed"
    assert log.steps["llm"].attempts[0].output_parameters == {"full_text": plan_answer("hi")}


async def test_returns_can_be_chosen(runtime: Runtime) -> None:
    both = MockLLMTask(name="llm", returns=["full_text", "word_count"], response="a b c", **FAST)
    log = await AsyncPipeline("p", [both]).execute(config=runtime)
    assert log.steps["llm"].attempts[0].output_parameters == {"full_text": "a b c",
                                                              "word_count": 3}
    renamed = MockLLMTask(name="llm", returns=["answer"], response="a b", **FAST)
    log = await AsyncPipeline("p", [renamed]).execute(config=runtime)
    assert log.steps["llm"].attempts[0].output_parameters == {"answer": "a b"}
    none = MockLLMTask(name="llm", returns=[], response="a", **FAST)
    log = await AsyncPipeline("p", [none]).execute(config=runtime)
    assert log.steps["llm"].attempts[0].output_parameters == {}


async def test_prompt_parameter_is_configurable(runtime: Runtime) -> None:
    task = MockLLMTask(name="llm", prompt_parameter="question", **FAST)
    events = await collect(AsyncPipeline("p", [task]), runtime, question="Why?")
    assert events == plan_events("Why?")


async def test_missing_prompt_fails_with_the_parameter_named(runtime: Runtime) -> None:
    with pytest.raises(RunFailedError) as info:
        await AsyncPipeline("p", [MockLLMTask(name="llm", **FAST)]).execute(config=runtime)
    assert info.value.error_type == ParameterError.__name__
    assert "'prompt'" in info.value.message


async def test_prompt_must_be_a_string(runtime: Runtime) -> None:
    with pytest.raises(RunFailedError) as info:
        await AsyncPipeline("p", [MockLLMTask(name="llm", **FAST)]).execute(
            parameters={"prompt": 42}, config=runtime)
    assert info.value.error_type == "TaskError"
    assert "must be a string, got int" in info.value.message


async def test_fixed_response_and_template(runtime: Runtime) -> None:
    fixed = MockLLMTask(name="llm", response="Fixed  answer here", **FAST)
    events = await collect(AsyncPipeline("p", [fixed]), runtime)  # no prompt needed
    assert [e.get("text") for e in events if e["type"] == "chunk"] == ["Fixed  ", "answer ",
                                                                       "here"]
    assert events[-1] == {"type": "done", "full_text": "Fixed  answer here"}

    echo = MockLLMTask(name="llm", response_template="You said: {prompt}", **FAST)
    events = await collect(AsyncPipeline("p", [echo]), runtime, prompt="a " * 40)
    assert events[-1] == {"type": "done", "full_text": "You said: " + "a " * 40}


async def test_seeded_words_are_deterministic(runtime: Runtime) -> None:
    async def text(seed: int) -> str:
        task = MockLLMTask(name="llm", response_words=200, seed=seed, **FAST)
        events = await collect(AsyncPipeline("p", [task]), runtime)
        chunks = [e for e in events if e["type"] == "chunk"]
        assert len(chunks) == 200
        full: str = events[-1]["full_text"]
        assert "".join(c["text"] for c in chunks) == full
        return full

    first = await text(7)
    assert first == await text(7)
    assert first != await text(8)
    assert set(first.split()) <= set(VOCABULARY)


async def test_tokens_per_second_zero_never_sleeps(runtime: Runtime,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float) -> None:
        sleeps.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)  # nothing in the run may sleep
    task = MockLLMTask(name="llm", response_words=20_000, **FAST)
    events = await collect(AsyncPipeline("p", [task]), runtime)
    assert len(events) == 20_003
    assert sleeps == []


async def test_delays_and_rate_are_applied(runtime: Runtime) -> None:
    # Lower bounds only: sleeping never ends early, however loaded the machine is.
    task = MockLLMTask(name="llm", thinking_delay=0.05, generating_delay=0.05,
                       tokens_per_second=100, response="one two three four five six")
    started = time.perf_counter()
    events = await collect(AsyncPipeline("p", [task]), runtime)
    assert time.perf_counter() - started >= 0.05 + 0.05 + 6 / 100 - 0.005
    assert len(events) == 9


@pytest.mark.parametrize(("fail_after", "chunks"), [(0, 0), (3, 3), (5, 5), (99, 5)])
async def test_fail_after_emits_n_chunks_then_fails(runtime: Runtime, fail_after: int,
                                                    chunks: int) -> None:
    task = MockLLMTask(name="llm", response="one two three four five", fail_after=fail_after,
                       fail_error="RuntimeError: upstream model overloaded", **FAST)
    handle = AsyncPipeline("p", [task]).stream(config=runtime)
    events = [e async for e in handle]
    data = [e.data for e in events if e.type == "step.event"]
    assert data[:2] == [{"type": "status", "status": "thinking"},
                        {"type": "status", "status": "generating"}]
    assert [d["type"] for d in data[2:]] == ["chunk"] * chunks
    assert events[-1].type == "run.failed"
    assert events[-1].data["error_type"] == "RuntimeError"
    assert events[-1].data["message"] == "upstream model overloaded"
    assert events[-1].data["step"] == "llm"
    log = await handle.result()
    assert log.status == "failed"
    assert log.error is not None and log.error.type == "RuntimeError"


async def test_fail_after_default_error_and_dotted_type(runtime: Runtime) -> None:
    task = MockLLMTask(name="llm", response="a b c", fail_after=1, **FAST)
    with pytest.raises(RunFailedError) as info:
        await AsyncPipeline("p", [task]).execute(config=runtime)
    assert info.value.error_type == "RuntimeError"
    assert "injected failure after 1 chunks" in info.value.message

    task = MockLLMTask(name="llm", response="a b c", fail_after=2,
                       fail_error="asyncio.TimeoutError: model timed out", **FAST)
    with pytest.raises(RunFailedError) as info:
        async for _ in AsyncPipeline("p", [task]).execute_streaming(config=runtime):
            pass
    assert (info.value.error_type, info.value.message) == ("TimeoutError", "model timed out")


@pytest.mark.parametrize(("options", "message"), [
    ({"response": "a", "response_words": 3}, "set only one of"),
    ({"response": "a", "response_template": "{prompt}"}, "set only one of"),
    ({"seed": 3}, "seed only applies to response_words"),
    ({"fail_error": "RuntimeError: x"}, "fail_error only applies with fail_after"),
    ({"fail_after": 1, "fail_error": "NoSuchError: x"}, "unknown exception type 'NoSuchError'"),
    ({"fail_after": 1, "fail_error": "KeyboardInterrupt"}, "not an Exception subclass"),
    ({"fail_after": 1, "fail_error": "json.nope: x"}, "module 'json' has no attribute 'nope'"),
    ({"fail_after": 1, "fail_error": "no_such_mod.Err"}, "cannot import module 'no_such_mod'"),
    ({"fail_after": 1, "fail_error": "UnicodeDecodeError: x"}, "cannot be built from one"),
    ({"fail_after": 1, "fail_error": "not an error: x"}, "must look like 'ErrorType: message'"),
    ({"fail_after": -1}, "greater than or equal to 0"),
    ({"response_template": "{nope}"}, "placeholder {nope}"),
    ({"response_template": "{prompt.__class__}"}, "placeholder {prompt.__class__}"),
    ({"response_template": "{"}, "not a valid format string"),
    ({"returns": ["full_text", "tokens"]}, "not outputs of mock-llm"),
    ({"tokens_per_second": -1}, "greater than or equal to 0"),
    ({"thinking_delay": float("inf")}, "finite number"),
    ({"response_words": 0}, "greater than or equal to 1"),
    ({"temperature": 0.2}, "Extra inputs are not permitted"),
])
def test_validation_errors_are_clear(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        MockLLMTask(name="llm", **options)
    assert message in str(info.value)


@pytest.mark.parametrize("options", [
    {},
    {"response": "fixed", "fail_after": 2, "fail_error": "TimeoutError: slow"},
    {"response_words": 5, "seed": 3, "returns": ["full_text", "word_count"]},
    {"response_template": "Echo: {prompt}", "tokens_per_second": 0},
])
def test_round_trips_through_model_dump(options: dict[str, Any]) -> None:
    task = MockLLMTask(name="llm", **options)
    again = MockLLMTask.model_validate(task.model_dump())
    assert again == task
    assert again.answer("hi") == task.answer("hi")


def test_yaml_validation_error_names_the_key(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: chat\nsteps:\n  - {name: llm, type: mock-llm, tokens_per_sec: 5}\n")
    with pytest.raises(PipelineDefinitionError, match="unknown key 'tokens_per_sec'"):
        load_pipeline(path, runtime)


async def test_yaml_pipeline(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "chat.yaml"
    path.write_text(
        "name: chat\n"
        "steps:\n"
        "  - name: llm\n"
        "    type: mock-llm\n"
        "    prompt_parameter: question\n"
        "    thinking_delay: 0\n"
        "    generating_delay: 0\n"
        "    tokens_per_second: 0\n"
        "    returns: [full_text, word_count]\n"
    )
    pipeline = load_pipeline(path, runtime)
    assert isinstance(pipeline.steps[0], MockLLMTask)
    events = await collect(pipeline, runtime, question="Hello, how are you?")
    assert events == plan_events("Hello, how are you?")
    log = await pipeline.execute(parameters={"question": "Hi"}, config=runtime)
    assert log.steps["llm"].attempts[0].output_parameters == {
        "full_text": plan_answer("Hi"), "word_count": len(plan_answer("Hi").split())}


async def test_yaml_failure_injection(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "failing.yaml"
    path.write_text(
        "name: chat\n"
        "steps:\n"
        "  - {name: llm, type: mock-llm, thinking_delay: 0, generating_delay: 0,\n"
        "     tokens_per_second: 0, fail_after: 2,\n"
        "     fail_error: 'ConnectionError: upstream model overloaded'}\n"
    )
    pipeline = load_pipeline(path, runtime)
    seen: list[dict[str, Any]] = []
    with pytest.raises(RunFailedError) as info:
        async for event in pipeline.execute_streaming(parameters={"prompt": "x"},
                                                      config=runtime):
            seen.append(event)
    assert [e["type"] for e in seen] == ["status", "status", "chunk", "chunk"]
    assert info.value.error_type == "ConnectionError"
    assert info.value.message == "upstream model overloaded"


async def test_concurrent_runs_keep_their_prompts(runtime: Runtime) -> None:
    pipeline = AsyncPipeline("chat", [MockLLMTask(name="llm", thinking_delay=0.01,
                                                  generating_delay=0, tokens_per_second=500)])
    prompts = [f"prompt number {i}" for i in range(50)]
    results = await asyncio.gather(*(collect(pipeline, runtime, prompt=p) for p in prompts))
    for prompt, events in zip(prompts, results, strict=True):
        assert events == plan_events(prompt)


async def test_cancelling_stops_the_stream(runtime: Runtime) -> None:
    task = MockLLMTask(name="llm", thinking_delay=0, generating_delay=0, tokens_per_second=50,
                       response_words=1000)
    handle = AsyncPipeline("p", [task]).stream(config=runtime)
    chunks = 0
    async for event in handle:
        if event.type == "step.event" and event.data["type"] == "chunk":
            chunks += 1
            if chunks == 3:
                break
    log = await handle.result()
    assert log.status == "cancelled"
