"""The referee: the fake server's wire format, read by the plain official ``openai`` SDK.

If these pass, the fake speaks what the SDK (and so real servers) speak, and the task's tests
against it mean something.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from .conftest import KEY, TOOL_DELTAS, USAGE, Fake


def client(fake: Fake, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=fake.base_url, max_retries=0)


async def read(fake: Fake, model: str) -> list[Any]:
    async with client(fake) as sdk:
        stream = await sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True})
        return [chunk async for chunk in stream]


async def test_text_deltas_and_usage(fake: Fake) -> None:
    chunks = await read(fake, "text")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world!"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump(exclude_none=True) == USAGE
    assert fake.app.requests[0].body["stream_options"] == {"include_usage": True}


async def test_reasoning_fields_reach_the_sdk_as_extras(fake: Fake) -> None:
    chunks = await read(fake, "reasoning")
    extras = [c.choices[0].delta.model_extra for c in chunks if c.choices]
    assert [e for e in extras if e] == [{"reasoning_content": "Think"},
                                        {"reasoning_content": "ing. "}, {"reasoning": "Done."}]


async def test_tool_call_deltas(fake: Fake) -> None:
    chunks = await read(fake, "tools")
    calls: dict[int, dict[str, str]] = {}
    for c in chunks:
        for call in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            entry = calls.setdefault(call.index, {"id": call.id or "", "name": "", "args": ""})
            entry["name"] += call.function.name or ""
            entry["args"] += call.function.arguments or ""
    assert calls == {0: {"id": "call_1", "name": "get_weather", "args": '{"city": "Paris"}'},
                     1: {"id": "call_2", "name": "get_time", "args": "{}"}}
    assert len(TOOL_DELTAS) == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_error_mid_stream_raises_api_error(fake: Fake) -> None:
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="upstream model crashed"):
        async with client(fake) as sdk:
            stream = await sdk.chat.completions.create(
                model="error-mid", messages=[{"role": "user", "content": "hi"}], stream=True)
            async for c in stream:
                seen.append(c.choices[0].delta.content or "")
    assert "".join(seen) == "partial"


async def test_status_errors(fake: Fake) -> None:
    fake.app.failures = [(429, {"Retry-After": "1"}), (503, {})]
    async with client(fake) as sdk:
        with pytest.raises(openai.RateLimitError) as limited:
            await sdk.chat.completions.create(model="text", messages=[], stream=True)
        assert limited.value.response.headers["retry-after"] == "1"
        with pytest.raises(openai.InternalServerError):
            await sdk.chat.completions.create(model="text", messages=[], stream=True)
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            await sdk.chat.completions.create(model="nope", messages=[], stream=True)
        with pytest.raises(openai.BadRequestError, match="maximum context length"):
            await sdk.chat.completions.create(model="too-long", messages=[], stream=True)
    async with client(fake, key="sk-wrong") as sdk:
        with pytest.raises(openai.AuthenticationError, match="sk-wrong"):
            await sdk.chat.completions.create(model="text", messages=[], stream=True)


async def test_slow_stream_keeps_coming(fake: Fake) -> None:
    async with client(fake) as sdk:
        stream = await sdk.chat.completions.create(
            model="slow", messages=[{"role": "user", "content": "hi"}], stream=True)
        got = []
        async for c in stream:
            got.append(c.choices[0].delta.content)
            if len(got) == 3:
                break
        await stream.close()
    assert got == ["tok 0 ", "tok 1 ", "tok 2 "]
    request = fake.app.requests[0]
    assert request.disconnected.wait(5)
