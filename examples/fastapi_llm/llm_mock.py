"""Mock LLM functions for demonstrating async streaming.

This is plain user code: an async generator whose dicts runstream streams to the
client. It knows nothing about runstream, HTTP or SSE.
"""

import asyncio
import re
from collections.abc import AsyncGenerator
from typing import Any


async def mock_llm_stream(
    prompt: str, delay_scale: float = 1.0, messages: list[dict[str, Any]] | None = None
) -> AsyncGenerator[dict[str, Any], None]:
    """
    Mock LLM that streams responses token-by-token.

    This demonstrates the AsyncGenerator pattern for streaming events
    through the pipeline to SSE clients.

    Args:
        prompt: The user's input prompt (a run parameter, passed by argument name)
        delay_scale: Multiplies every delay (0: as fast as possible, for tests)
        messages: The conversation before the prompt (a run parameter, from the
            front ends' protocols: ``{"role", "content"}`` dicts); a real model reads
            them, the mock answers the prompt alone

    Yields:
        dict: Events in the format:
            - {"type": "status", "status": "thinking"} - Processing status
            - {"type": "chunk", "text": "..."} - Token/word chunk
            - {"type": "done", "full_text": "..."} - Completion with full response
    """
    # Simulate initial "thinking" delay
    yield {"type": "status", "status": "thinking"}
    await asyncio.sleep(0.3 * delay_scale)

    # Build response based on prompt
    prompt_preview = prompt[:50] + ("..." if len(prompt) > 50 else "")
    response = (
        f"I received your prompt: '{prompt_preview}'. "
        "Here is my simulated response with multiple words to demonstrate "
        "token-by-token streaming in action."
    )

    yield {"type": "status", "status": "generating"}
    await asyncio.sleep(0.1 * delay_scale)

    # Stream word by word. Each piece keeps the whitespace after its word (the first piece
    # also any before it), so the pieces add up to the response exactly: a client rebuilds the
    # text by concatenating them, and a newline or a run of spaces in the prompt survives.
    for piece in re.findall(r"\s*\S+\s*|\s+", response):
        yield {"type": "chunk", "text": piece}
        await asyncio.sleep(0.05 * delay_scale)  # 50ms per token

    yield {"type": "done", "full_text": response}
