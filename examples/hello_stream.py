"""A small streaming pipeline for the CLI: `uv run runstream run examples.hello_stream:pipeline`.

Two steps: an async generator streams words (its final ``done`` dict carries ``sentence``), then
a coroutine counts them. Pass ``--param name=Ada`` to change the greeting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from runstream import AsyncPipeline
from runstream_async_python import AsyncPythonTask


async def greet(name: str = "world", delay: float = 0.05) -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "status", "status": "generating"}
    words = f"Hello {name}, this sentence arrives one word at a time.".split()
    for i, word in enumerate(words):
        await asyncio.sleep(delay)
        yield {"type": "chunk", "text": word + (" " if i < len(words) - 1 else "")}
    yield {"type": "done", "sentence": " ".join(words)}


async def count_words(sentence: str) -> int:
    return len(sentence.split())


def pipeline() -> AsyncPipeline:
    return AsyncPipeline(
        name="hello",
        steps=[
            AsyncPythonTask(name="greet", function=greet, returns=["sentence"]),
            AsyncPythonTask(name="count", function=count_words, returns=["words"]),
        ],
    )
