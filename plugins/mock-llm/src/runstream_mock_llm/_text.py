"""The answer a mock LLM gives: from a template, a fixed text or seeded random words."""

from __future__ import annotations

import random
import re
import string

__all__ = ["DEFAULT_TEMPLATE", "PREVIEW_CHARS", "VOCABULARY", "check_template", "chunks",
           "random_words", "render"]

#: The answer of ``mock_llm_stream`` in the FastAPI example; ``{prompt_preview}`` is the prompt
#: cut to 50 characters, with ``...`` appended when it was longer.
DEFAULT_TEMPLATE = (
    "I received your prompt: '{prompt_preview}'. "
    "Here is my simulated response with multiple words to demonstrate "
    "token-by-token streaming in action."
)

#: Length of ``{prompt_preview}``.
PREVIEW_CHARS = 50

_PLACEHOLDERS = ("prompt", "prompt_preview")

#: Words ``response_words`` draws from.
VOCABULARY = (
    "the", "a", "model", "token", "stream", "answer", "quickly", "data", "pipeline", "event",
    "server", "client", "async", "task", "response", "prompt", "simulated", "words", "with",
    "and", "of", "to", "in", "is", "every", "run", "step", "sends", "reads", "returns", "small",
    "large", "fast", "slow", "clear", "result", "context", "value", "list", "text",
)


def check_template(template: str) -> str:
    """Return ``template`` if its only placeholders are ``{prompt}`` and ``{prompt_preview}``.

    Raises ``ValueError`` (naming the offending placeholder) otherwise.
    """
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template)
                  if field is not None]
    except ValueError as exc:
        raise ValueError(f"response_template is not a valid format string: {exc}; write a "
                         "literal brace as '{{' or '}}'") from None
    for field in fields:
        if field not in _PLACEHOLDERS:
            raise ValueError(
                f"response_template uses the placeholder {{{field}}}; allowed placeholders: "
                "{prompt}, {prompt_preview} (write a literal brace as '{{' or '}}')")
    return template


def render(template: str, prompt: str) -> str:
    """The answer for ``prompt`` (``template`` must have passed :func:`check_template`)."""
    preview = prompt[:PREVIEW_CHARS] + ("..." if len(prompt) > PREVIEW_CHARS else "")
    return template.format(prompt=prompt, prompt_preview=preview)


def random_words(count: int, seed: int) -> str:
    """``count`` words drawn from :data:`VOCABULARY`; the same seed gives the same words."""
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCABULARY) for _ in range(count))


#: A word with the whitespace before it (only at the start of the text) and after it; or, in a
#: text without a word, all of its whitespace. ``\s`` is what ``str.split()`` splits on.
_PIECE = re.compile(r"\s*\S+\s*|\s+")


def chunks(text: str) -> list[str]:
    """The streamed pieces of ``text``: one per whitespace-separated word, each carrying the
    whitespace that follows it (the first also what precedes it), so that the pieces concatenate
    to ``text`` exactly, whatever whitespace it holds (line breaks, U+2028, runs of spaces). For a
    text of words separated by single spaces that is each word followed by a space, the last
    without."""
    return _PIECE.findall(text)
