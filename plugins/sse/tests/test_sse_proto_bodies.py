"""Request bodies of the front ends' protocols: the prompt, the history, clear errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ag_ui.core import RunAgentInput, UserMessage
from runstream_sse import make_adapter, parse_chat_request

HOSTILE = "a\u2028b\r\nc 😀 data: x\n\n"


def test_use_chat_body() -> None:
    body = {"id": "chat-1", "trigger": "submit-message", "messageId": None, "messages": [
        {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]},
        {"id": "m2", "role": "assistant", "parts": [
            {"type": "step-start"}, {"type": "reasoning", "text": "hmm"},
            {"type": "text", "text": "Hello"}, {"type": "text", "text": "!"}]},
        {"id": "m3", "role": "user", "parts": [{"type": "text", "text": HOSTILE},
                                               {"type": "file", "url": "x", "mediaType": "a"}]},
    ]}
    request = parse_chat_request("vercel-ai", json.dumps(body).encode())
    assert request.prompt == HOSTILE
    assert request.messages == [{"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": "Hello!"}]
    assert request.options == {} and request.stream


def test_agui_body_as_the_python_sdk_writes_it() -> None:
    run_input = RunAgentInput(
        thread_id="t1", run_id="r1", state={}, tools=[], context=[], forwarded_props={},
        messages=[UserMessage(id="u1", content="first"),
                  UserMessage(id="u2", content=[{"type": "text", "text": HOSTILE}])])
    body = run_input.model_dump_json(by_alias=True, exclude_none=True)
    request = parse_chat_request("ag-ui", body)
    assert request.prompt == HOSTILE
    assert request.messages == [{"role": "user", "content": "first"}]
    assert request.options == {"thread_id": "t1", "agui_run_id": "r1"}
    adapter = make_adapter("ag-ui", run_id="run-1", **request.options)
    out = adapter.encode([(1, 0.0, "run.started", None, {})])
    assert '"threadId": "t1", "runId": "r1"' in out


def test_openai_body() -> None:
    body: dict[str, Any] = {
        "model": "gpt-x", "stream": True, "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": [{"type": "text", "text": "What is "},
                                                  {"type": "image_url", "image_url": {}},
                                                  {"type": "text", "text": "SSE?"}]},
                     {"role": "assistant", "content": None, "tool_calls": []}]}
    request = parse_chat_request("openai", body)
    assert request.prompt == "What is SSE?"
    assert request.messages == [{"role": "system", "content": "Be brief."}]
    assert request.options == {"model": "gpt-x", "include_usage": True}
    assert request.stream
    plain = parse_chat_request("openai", {"model": "m", "messages": [
        {"role": "user", "content": "hi"}]})
    assert not plain.stream and plain.options == {"model": "m", "include_usage": False}


@pytest.mark.parametrize(("protocol", "body", "message"), [
    ("openai", b"{", "the openai request body is not JSON"),
    ("openai", b"[1]", "must be a JSON object, got list"),
    ("openai", {"model": "m", "messages": [{"role": "system", "content": "x"}]},
     "the openai request has no user message"),
    ("openai", {"messages": [{"role": "user", "content": "x"}]}, "model: Field required"),
    ("openai", {"model": "m", "messages": "hi"}, "messages: Input should be a valid list"),
    ("vercel-ai", {"messages": []}, "the vercel-ai request has no user message"),
    ("vercel-ai", {"messages": [{"role": "user", "parts": "x"}]}, "messages.0.parts"),
    ("ag-ui", {"runId": "r", "messages": []}, "threadId: Field required"),
    ("ag-ui", {"threadId": "t", "runId": "r", "messages": [{"role": "user", "content": 3}]},
     "messages.0.content"),
    ("openai", b" " * 1_000_001, "is 1000001 bytes; the limit is 1000000"),
    ("openai", {"model": "m", "messages": [{"role": "user", "content": "x"}] * 1001},
     "messages: List should have at most 1000 items"),
    ("sse", {}, "unknown protocol 'sse'"),
])
def test_bad_bodies_say_what_is_wrong(protocol: str, body: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_chat_request(protocol, body)
    assert message in str(info.value)
