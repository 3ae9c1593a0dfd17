"""Recorded runs for the protocol adapter tests: real runs of runstream (mock-llm, a task that
speaks every event shape, a retried step, a failing one), as ``handle.batches()`` hands them
over."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from runstream import AsyncPipeline, EventRecord, Retry, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_mock_llm import MockLLMTask

FAST: dict[str, Any] = {"thinking_delay": 0, "generating_delay": 0, "tokens_per_second": 0}

#: Text that breaks readers: line breaks of every kind, emoji, SSE-looking text, 20,000 chars.
HOSTILE = [
    "line one\nline two\r\nthree\rfour", "a\u2028b\u2029c\x85d", "runs   of    spaces ",
    "emoji 😀 👩\u200d👩\u200d👧 🇫🇷 e\u0301", "data: x\n\nid: 9\r\nevent: run.completed\n\n",
    "[DONE]", "\x00\x1b control", "lone \ud800 surrogate",
    ("lorem ipsum \u2028\n\r\x85 😀 data: x  " * 1000)[:20_000],
]


async def record(pipeline: AsyncPipeline, runtime: Runtime, **parameters: Any
                 ) -> tuple[str, list[EventRecord]]:
    """Run ``pipeline`` and collect its records."""
    handle = pipeline.stream(parameters, config=runtime)
    records: list[EventRecord] = []
    async for batch in handle.batches():
        records.extend(batch)
    return handle.run_id, records


async def mock_run(runtime: Runtime, prompt: str, **task: Any
                   ) -> tuple[str, list[EventRecord], str]:
    """A mock-llm run answering ``prompt`` with the prompt itself: (run id, records, text)."""
    llm = MockLLMTask(name="llm", response_template="{prompt}", **{**FAST, **task})
    run_id, records = await record(AsyncPipeline("chat", [llm]), runtime, prompt=prompt)
    return run_id, records, prompt


async def every_shape() -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "status", "status": "thinking"}
    yield {"type": "reasoning", "text": "The user greets me, "}
    yield {"type": "reasoning", "text": "so I answer.\n"}
    yield {"type": "chunk", "text": "Hello"}
    yield {"type": "tool_call_start", "id": "call_1", "index": 0, "name": "get_weather"}
    yield {"type": "tool_call_delta", "id": "call_1", "index": 0, "arguments": '{"ci'}
    yield {"type": "tool_call_delta", "id": "call_1", "index": 0, "arguments": 'ty": "Paris"}'}
    yield {"type": "tool_call_end", "id": "call_1", "index": 0, "name": "get_weather",
           "arguments": json.dumps({"city": "Paris"})}
    yield {"type": "tool_result", "id": "call_1", "result": {"temperature_c": 18}}
    yield {"type": "tool_call_end", "id": "call_2", "index": 1, "name": "broken",
           "arguments": "{not json"}
    yield {"type": "tool_result", "id": "nobody", "result": 1}
    yield {"type": "data", "name": "sources", "data": [{"url": "https://example.org"}]}
    yield {"type": "chunk", "text": ", world!"}
    yield {"type": "chunk", "text": 42}  # the wrong type: an unknown shape
    yield {"type": "something-else", "value": float("nan")}
    yield {"type": "done", "full_text": "Hello, world!", "finish_reason": "stop",
           "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}}


async def shapes_run(runtime: Runtime) -> tuple[str, list[EventRecord], str]:
    """A run whose step emits every shape of docs/events.md, and two malformed events."""
    task = AsyncPythonTask(name="model", function=every_shape)
    run_id, records = await record(AsyncPipeline("shapes", [task]), runtime)
    return run_id, records, "Hello, world!"


class Flaky:
    """Fails its first call after one chunk; the second call answers."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self) -> AsyncGenerator[dict[str, Any], None]:
        self.calls += 1
        yield {"type": "chunk", "text": f"attempt {self.calls} "}
        if self.calls == 1:
            raise RuntimeError("flake")
        yield {"type": "chunk", "text": "answer"}
        yield {"type": "done", "full_text": "attempt 2 answer"}


async def retried_run(runtime: Runtime) -> tuple[str, list[EventRecord], str]:
    """A run whose step fails once after a chunk and is retried."""
    task = AsyncPythonTask(name="llm", function=Flaky().run,
                           retry=Retry(max_attempts=2, delay=0.0, max_delay=0.0))
    run_id, records = await record(AsyncPipeline("retry", [task]), runtime)
    return run_id, records, "attempt 2 answer"


async def failed_run(runtime: Runtime) -> tuple[str, list[EventRecord], str]:
    """A mock-llm run that fails after 3 chunks."""
    llm = MockLLMTask(name="llm", response="one two three four five", fail_after=3,
                      fail_error="RuntimeError: upstream model overloaded", **FAST)
    run_id, records = await record(AsyncPipeline("chat", [llm]), runtime)
    return run_id, records, "one two three "
