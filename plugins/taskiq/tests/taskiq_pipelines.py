"""Pipelines the tests' workers load by reference (``taskiq_pipelines:...``; the workers get
this directory on their PYTHONPATH)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from runstream import AsyncPipeline
from runstream_async_python import AsyncPythonTask


async def _slow(count: int = 1000, marker: str = "", interval: float = 0.02
                ) -> AsyncIterator[dict[str, object]]:
    """``count`` events, ``interval`` s apart; ``marker``: a file its ``finally`` writes."""
    try:
        for i in range(count):
            yield {"type": "tick", "i": i}
            await asyncio.sleep(interval)
    finally:
        if marker:
            Path(marker).write_text("finally ran", encoding="utf-8")


def slow_pipeline() -> AsyncPipeline:
    return AsyncPipeline("slow", [AsyncPythonTask(name="ticks", function=_slow)])


def rerun_pipeline() -> AsyncPipeline:
    """``slow``, run again from the start (once) if its worker is lost."""
    return AsyncPipeline("slow-rerun", [AsyncPythonTask(name="ticks", function=_slow)],
                         rerun_on_worker_loss=1)


async def _fails(message: str = "boom") -> AsyncIterator[dict[str, object]]:
    yield {"type": "tick", "i": 0}
    raise ValueError(message)


def failing_pipeline() -> AsyncPipeline:
    """One event, then its step fails with ``ValueError(message)``."""
    return AsyncPipeline("fails", [AsyncPythonTask(name="boom", function=_fails)])
