"""The openai-chat task type against the fake server: events, errors, retries, the key."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import runstream_openai
from pydantic import ValidationError
from runstream import AsyncPipeline, Event, Retry, RunLog, Runtime, load_pipeline
from runstream_openai import OpenAIChatTask

from .conftest import KEY, USAGE, Fake


def task(fake: Fake, model: str = "text", **options: Any) -> OpenAIChatTask:
    options.setdefault("api_key_env", "FAKE_OPENAI_KEY")
    return OpenAIChatTask(name="llm", model=model, base_url=fake.base_url, **options)


async def run(runtime: Runtime, step: OpenAIChatTask, **parameters: Any
              ) -> tuple[list[Event], RunLog]:
    handle = AsyncPipeline("chat", [step]).stream(parameters or {"prompt": "hi"},
                                                  config=runtime)
    events = [event async for event in handle]
    await handle.result()
    return events, await runtime.store.get(handle.run_id)


def dicts(events: list[Event]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type == "step.event"]


def of_type(events: list[Event], kind: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type == kind]


def test_public_api() -> None:
    assert runstream_openai.__all__ == sorted(runstream_openai.__all__)
    public = {n for n in dir(runstream_openai) if not n.startswith("_")}
    assert public == set(runstream_openai.__all__)


def test_registered_through_entry_point(runtime: Runtime) -> None:
    assert runtime.plugins.task_types.get("openai-chat") is OpenAIChatTask


async def test_text_deltas_arrive_in_order_and_done_carries_usage(
        fake: Fake, api_key: str, runtime: Runtime) -> None:
    events, log = await run(runtime, task(fake, returns=["full_text", "usage",
                                                          "finish_reason"]))
    assert dicts(events) == [
        {"type": "status", "status": "thinking"},
        {"type": "status", "status": "generating"},
        {"type": "chunk", "text": "Hello"}, {"type": "chunk", "text": ", "},
        {"type": "chunk", "text": "world"}, {"type": "chunk", "text": "!"},
        {"type": "done", "full_text": "Hello, world!", "finish_reason": "stop",
         "usage": USAGE},
    ]
    assert log.status == "completed"
    assert log.steps["llm"].attempts[0].output_parameters == {
        "full_text": "Hello, world!", "usage": USAGE, "finish_reason": "stop"}
    sent = fake.app.requests[0].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [{"role": "user", "content": "hi"}]


async def test_reasoning_deltas(fake: Fake, api_key: str, runtime: Runtime) -> None:
    events, _ = await run(runtime, task(fake, "reasoning", returns=["full_text", "reasoning"]))
    assert dicts(events)[1:] == [
        {"type": "status", "status": "generating"},
        {"type": "reasoning", "text": "Think"}, {"type": "reasoning", "text": "ing. "},
        {"type": "reasoning", "text": "Done."}, {"type": "chunk", "text": "42"},
        {"type": "done", "full_text": "42", "finish_reason": "stop", "usage": USAGE},
    ]


async def test_tool_calls_start_deltas_end(fake: Fake, api_key: str, runtime: Runtime) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    events, log = await run(runtime, task(fake, "tools", tools=tools, tool_choice="auto",
                                          temperature=0.2, max_tokens=50, seed=7,
                                          returns=["tool_calls", "finish_reason"]))
    assert dicts(events)[1:] == [
        {"type": "status", "status": "generating"},
        {"type": "tool_call_start", "id": "call_1", "index": 0, "name": "get_weather"},
        {"type": "tool_call_delta", "id": "call_1", "index": 0, "arguments": '{"ci'},
        {"type": "tool_call_delta", "id": "call_1", "index": 0, "arguments": 'ty": "Paris"}'},
        {"type": "tool_call_start", "id": "call_2", "index": 1, "name": "get_time"},
        {"type": "tool_call_delta", "id": "call_2", "index": 1, "arguments": "{}"},
        {"type": "tool_call_end", "id": "call_1", "index": 0, "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "tool_call_end", "id": "call_2", "index": 1, "name": "get_time",
         "arguments": "{}"},
        {"type": "done", "full_text": "", "finish_reason": "tool_calls", "usage": USAGE},
    ]
    outputs = log.steps["llm"].attempts[0].output_parameters
    assert outputs["finish_reason"] == "tool_calls"
    assert [json.loads(c["arguments"]) for c in outputs["tool_calls"]] == [{"city": "Paris"}, {}]
    sent = fake.app.requests[0].body
    assert (sent["tools"], sent["tool_choice"], sent["temperature"], sent["max_tokens"],
            sent["seed"]) == (tools, "auto", 0.2, 50, 7)


async def test_messages_parameter_and_system(fake: Fake, api_key: str,
                                             runtime: Runtime) -> None:
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
               {"role": "user", "content": "And now?"}]
    step = task(fake, messages_parameter="messages", system="Be brief.")
    assert step.reads_parameters() == {"messages"}
    events, _ = await run(runtime, step, messages=history)
    assert dicts(events)[-1]["full_text"] == "Hello, world!"
    assert fake.app.requests[0].body["messages"] == [
        {"role": "system", "content": "Be brief."}, *history]


async def test_messages_that_are_not_a_list_fail_clearly(fake: Fake, api_key: str,
                                                         runtime: Runtime) -> None:
    _events, log = await run(runtime, task(fake, messages_parameter="messages"),
                            messages="hello")
    assert log.status == "failed" and log.error is not None
    assert "parameter 'messages' must be a non-empty list of chat messages" in log.error.message
    assert fake.app.requests == []


async def test_error_mid_stream_fails_the_step_with_the_servers_message(
        fake: Fake, api_key: str, runtime: Runtime) -> None:
    events, log = await run(runtime, task(fake, "error-mid"))
    assert [d.get("text") for d in dicts(events) if d["type"] == "chunk"] == ["par", "tial"]
    assert log.status == "failed" and log.error is not None
    assert log.error.type == "ModelServerError"
    assert "error mid-stream: upstream model crashed" in log.error.message


async def test_429_and_503_are_retried_after_the_advertised_delay(
        fake: Fake, api_key: str, runtime: Runtime) -> None:
    fake.app.failures = [(429, {"Retry-After": "1"}), (503, {"retry-after-ms": "150"}),
                         (502, {})]
    retry = Retry(max_attempts=4, backoff="fixed", delay=0.0, max_delay=5.0)
    events, log = await run(runtime, task(fake, retry=retry))
    retrying = of_type(events, "step.retrying")
    assert [(r["attempt"], r["delay"], r["error_type"]) for r in retrying] == [
        (1, 1.0, "ModelServerError"), (2, 0.15, "ModelServerError"),
        (3, 0.0, "ModelServerError")]
    assert "HTTP 429: fake failure 429" in retrying[0]["message"]
    assert log.status == "completed" and len(fake.app.requests) == 4
    assert [a.status for a in log.steps["llm"].attempts] == [
        "failed", "failed", "failed", "completed"]


@pytest.mark.parametrize(("model", "status", "says"), [
    ("no-such-model", 404, "The model `no-such-model` does not exist."),
    ("too-long", 400, "This model's maximum context length is 8192 tokens."),
])
async def test_4xx_fails_at_once_with_the_servers_message(
        fake: Fake, api_key: str, runtime: Runtime, model: str, status: int, says: str) -> None:
    events, log = await run(runtime, task(fake, model, retry=Retry(max_attempts=5, delay=0)))
    assert of_type(events, "step.retrying") == []
    assert len(fake.app.requests) == 1
    assert log.status == "failed" and log.error is not None
    assert log.error.type == "ModelRequestError"
    assert f"HTTP {status}: {says}" in log.error.message
    assert fake.base_url in log.error.message and model in log.error.message


async def test_missing_key_names_the_variable(fake: Fake, runtime: Runtime,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_OPENAI_KEY", raising=False)
    events, log = await run(runtime, task(fake, retry=Retry(delay=0)))
    assert log.status == "failed" and log.error is not None
    assert log.error.type == "ModelRequestError"
    assert "environment variable FAKE_OPENAI_KEY (api_key_env) is not set" in log.error.message
    assert fake.app.requests == [] and of_type(events, "step.retrying") == []


async def test_no_key_needed_when_api_key_env_is_null(fake: Fake, runtime: Runtime) -> None:
    fake.app.api_key = None
    _events, log = await run(runtime, task(fake, api_key_env=None))
    assert log.status == "completed"


async def test_unreachable_server_names_base_url(api_key: str, runtime: Runtime) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    step = OpenAIChatTask(name="llm", model="text", base_url=url, api_key_env="FAKE_OPENAI_KEY")
    _events, log = await run(runtime, step)
    assert log.status == "failed" and log.error is not None
    assert log.error.type == "ModelUnreachableError"
    assert f"base_url {url}" in log.error.message
    assert "cannot connect to the model server" in log.error.message
    assert "check `base_url`" in log.error.message


async def test_a_stalled_server_times_out(fake: Fake, api_key: str, runtime: Runtime) -> None:
    _events, log = await run(runtime, task(fake, "stall", timeout=0.3))
    assert log.status == "failed" and log.error is not None
    assert log.error.type in ("StepTimeoutError", "ModelUnreachableError")
    assert fake.app.requests[0].disconnected.wait(5)


async def test_the_key_appears_in_no_event_log_or_error(
        fake: Fake, api_key: str, runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the SDK's and httpx's debug logs too
    seen: list[str] = []
    events, log = await run(runtime, task(fake, returns=["full_text", "usage"]))
    seen += [e.model_dump_json() for e in events] + [log.model_dump_json()]
    # A server that rejects the key and quotes it back, as OpenAI's does.
    fake.app.api_key = "sk-the-right-one"
    events, log = await run(runtime, task(fake, retry=Retry(max_attempts=2, delay=0)))
    assert log.status == "failed" and log.error is not None
    assert log.error.type == "ModelRequestError" and "HTTP 401" in log.error.message
    assert "Incorrect API key provided: ***." in log.error.message
    seen += [e.model_dump_json() for e in events] + [log.model_dump_json()]
    assert fake.app.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    seen += [record.getMessage() for record in caplog.records]
    assert len(caplog.records) > 0
    assert all(KEY not in text for text in seen)


async def test_cancelling_the_run_closes_the_upstream_response(
        fake: Fake, api_key: str, runtime: Runtime) -> None:
    handle = AsyncPipeline("chat", [task(fake, "slow")]).stream({"prompt": "hi"},
                                                                 config=runtime)
    async for event in handle:
        if event.type == "step.event" and event.data["type"] == "chunk":
            break
    cancelled_at = time.monotonic()
    log = await handle.cancel("stop")
    request = fake.app.requests[0]
    assert await asyncio.to_thread(request.disconnected.wait, 5)
    assert log.status == "cancelled"
    assert request.finished_at is None and request.frames < 100
    assert request.disconnected_at is not None
    gap = request.disconnected_at - cancelled_at
    print(f"\nupstream connection closed {gap * 1000:.1f} ms after the cancel")
    assert gap < 1.0


async def test_cancelling_mid_burst_with_nobody_reading_closes_the_upstream_response(
        fake: Fake, api_key: str, runtime: Runtime) -> None:
    # The server has sent everything and waits; the run's reader has stopped reading.
    handle = AsyncPipeline("chat", [task(fake, "burst")]).stream({"prompt": "hi"},
                                                                  config=runtime)
    batches = handle.batches()
    await anext(batches)  # read one batch, then stop reading
    request = (await asyncio.to_thread(fake.app.wait_requests, 1))[0]
    assert await asyncio.to_thread(request.stalled.wait, 10)  # everything was sent
    cancelled_at = time.monotonic()
    log = await handle.cancel("stop")
    assert log.status == "cancelled"
    assert await asyncio.to_thread(request.disconnected.wait, 5), "upstream left open"
    assert request.disconnected_at is not None
    gap = request.disconnected_at - cancelled_at
    print(f"\nupstream connection closed {gap * 1000:.1f} ms after the cancel")
    assert gap < 1.0
    await batches.aclose()


def test_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="tool_choice only applies with tools"):
        OpenAIChatTask(name="llm", model="m", tool_choice="auto")
    with pytest.raises(ValidationError, match="are not outputs of openai-chat"):
        OpenAIChatTask(name="llm", model="m", returns=["full_text", "tokens"])
    with pytest.raises(ValidationError):
        OpenAIChatTask(name="llm", model="")


async def test_yaml_pipeline(fake: Fake, api_key: str, runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "chat.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: chat
        steps:
          - name: llm
            type: openai-chat
            model: tools
            base_url: {fake.base_url}
            api_key_env: FAKE_OPENAI_KEY
            system: You are terse.
            temperature: 0
            tools:
              - type: function
                function:
                  name: get_weather
                  parameters: {{type: object, properties: {{city: {{type: string}}}}}}
            retry: {{max_attempts: 2, delay: 0}}
            returns: [tool_calls]
        """), encoding="utf-8")
    pipeline = load_pipeline(path, runtime)
    step = pipeline.steps[0]
    assert isinstance(step, OpenAIChatTask) and step.retry is not None
    handle = pipeline.stream({"prompt": "Weather?"}, config=runtime)
    events = [e async for e in handle]
    log = await handle.result()
    assert log.status == "completed"
    assert [d["type"] for d in dicts(events)].count("tool_call_end") == 2
    sent = fake.app.requests[0].body
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent["temperature"] == 0 and sent["tools"][0]["function"]["name"] == "get_weather"


async def test_history_parameter_puts_the_earlier_turns_before_the_prompt(
        fake: Fake, api_key: str, runtime: Runtime) -> None:
    # A chat front end sends the prompt and the turns before it apart (issue 14): both reach
    # the model, in order; a run without the history sends the prompt alone.
    earlier = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    step = task(fake, history_parameter="messages", system="Be brief.")
    assert step.reads_parameters() == {"prompt"}
    await run(runtime, step, prompt="And now?", messages=earlier)
    assert fake.app.requests[0].body["messages"] == [
        {"role": "system", "content": "Be brief."}, *earlier,
        {"role": "user", "content": "And now?"}]
    await run(runtime, step, prompt="Alone")
    assert fake.app.requests[1].body["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Alone"}]
    _events, log = await run(runtime, step, prompt="x", messages="not a list")
    assert log.status == "failed" and log.error is not None
    assert "parameter 'messages' (the conversation before the prompt)" in log.error.message
    with pytest.raises(ValueError, match="history_parameter goes with prompt_parameter"):
        task(fake, history_parameter="h", messages_parameter="m")
