"""What mock-llm streams for a prompt, written out independently of the plugin: the oracle of
the mock-llm tests and of the example app's tests."""

from __future__ import annotations

from typing import Any


def plan_answer(prompt: str) -> str:
    """The answer of the plan's ``mock_llm_stream`` (Task 4), written out independently."""
    prompt_preview = prompt[:50] + ("..." if len(prompt) > 50 else "")
    return (
        f"I received your prompt: '{prompt_preview}'. "
        "Here is my simulated response with multiple words to demonstrate "
        "token-by-token streaming in action."
    )


def plan_events(prompt: str) -> list[dict[str, Any]]:
    """The dicts the plan's ``mock_llm_stream`` yields for ``prompt``, in order."""
    response = plan_answer(prompt)
    words = response.split()
    return [
        {"type": "status", "status": "thinking"},
        {"type": "status", "status": "generating"},
        *({"type": "chunk", "text": w + (" " if i < len(words) - 1 else "")}
          for i, w in enumerate(words)),
        {"type": "done", "full_text": response},
    ]
