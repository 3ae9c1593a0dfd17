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
    return [
        {"type": "status", "status": "thinking"},
        {"type": "status", "status": "generating"},
        *({"type": "chunk", "text": piece} for piece in plan_pieces(response)),
        {"type": "done", "full_text": response},
    ]


def plan_pieces(text: str) -> list[str]:
    """The chunks of ``text``: the plan's ``word + " "`` per word, the last word bare, for words
    separated by single spaces; in general each word with the whitespace that follows it (the
    first also the whitespace before it), so that the chunks concatenate to ``text`` exactly
    (issue 14). Written as a scan, independently of the plugin's regular expression."""
    pieces: list[str] = []
    current = ""
    for i, char in enumerate(text):
        # A word starts after whitespace: the piece so far, if it holds a word, is done.
        if i and not char.isspace() and text[i - 1].isspace() and not current.isspace():
            pieces.append(current)
            current = ""
        current += char
    if current:
        pieces.append(current)
    return pieces
