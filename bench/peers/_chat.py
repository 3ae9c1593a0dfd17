"""The chat every peer serves, and the probe that tells the driver when a client's work stopped.

Standard library only: every peer's server imports it from its own venv (uvicorn's
``--app-dir bench/peers``). The model mirrors examples/fastapi_llm/llm_mock.py exactly (words,
events, delays); ``run.py`` checks the mirror against the example before it measures.

Stop probe: a peer wraps the work of one chat (its model call) in ``TRACKER.track(prompt)``.
For prompts the driver marks as to be abandoned (they end with :data:`ABANDON_MARK`), the
tracker records when the work ended (``time.monotonic()``, the same clock in every process on
Linux) and how: ``completed`` (the model ran to its end although the client had gone) or
``stopped`` (an exception, cancellation or ``GeneratorExit`` ended it); ``running`` until
then. A chat whose work never started has no record. ``GET /stats`` serves
:meth:`Tracker.snapshot`; the driver compares each end with the moment its client closed the
socket. Only marked prompts are recorded, so the steady phase's memory is not touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

#: The driver ends the prompts it will abandon with this mark.
ABANDON_MARK = "-drop"

THINKING_DELAY = 0.3
GENERATING_DELAY = 0.1
WORD_DELAY = 0.05


def answer(prompt: str) -> tuple[list[str], str]:
    """The word chunks and the full text of the mock model's answer to ``prompt``."""
    prompt_preview = prompt[:50] + ("..." if len(prompt) > 50 else "")
    response = (
        f"I received your prompt: '{prompt_preview}'. "
        "Here is my simulated response with multiple words to demonstrate "
        "token-by-token streaming in action."
    )
    words = response.split()
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)], response


async def mock_llm_stream(prompt: str, delay_scale: float = 1.0
                          ) -> AsyncIterator[dict[str, Any]]:
    """The example's mock model: status, status, one chunk per word 50 ms apart, done."""
    yield {"type": "status", "status": "thinking"}
    await asyncio.sleep(THINKING_DELAY * delay_scale)
    chunks, response = answer(prompt)
    yield {"type": "status", "status": "generating"}
    await asyncio.sleep(GENERATING_DELAY * delay_scale)
    for text in chunks:
        yield {"type": "chunk", "text": text}
        await asyncio.sleep(WORD_DELAY * delay_scale)
    yield {"type": "done", "full_text": response}


class Tracker:
    """When and how the work of each abandoned chat ended (see the module docstring)."""

    def __init__(self) -> None:
        self.ended: dict[str, tuple[str, float]] = {}
        self.started = 0

    @contextmanager
    def track(self, prompt: str) -> Iterator[None]:
        if not prompt.endswith(ABANDON_MARK):
            yield
            return
        self.started += 1
        self.ended[prompt] = ("running", time.monotonic())
        outcome = "stopped"
        try:
            yield
            outcome = "completed"
        finally:
            self.ended[prompt] = (outcome, time.monotonic())

    def snapshot(self) -> dict[str, Any]:
        return {"tracked": self.started, "ended": self.ended}


TRACKER = Tracker()


async def tracked_stream(prompt: str) -> AsyncIterator[dict[str, Any]]:
    """:func:`mock_llm_stream` with its end recorded by :data:`TRACKER`."""
    with TRACKER.track(prompt):
        async for item in mock_llm_stream(prompt):
            yield item
