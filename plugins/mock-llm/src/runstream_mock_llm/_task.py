"""``MockLLMTask``: the ``mock-llm`` task type."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import Field, PrivateAttr, field_validator, model_validator
from runstream import Task, TaskContext, TaskError

from ._failure import parse_fail_error
from ._text import DEFAULT_TEMPLATE, check_template, chunks, random_words, render

__all__ = ["OUTPUTS", "MockLLMTask"]

#: What a mock-llm step can return (name them in ``returns``).
OUTPUTS = ("full_text", "word_count")


class MockLLMTask(Task):
    """A fake LLM that streams an answer word by word, for demos, tests and benchmarks.

    It reads the prompt from the parameter ``prompt_parameter`` and emits, in order::

        {"type": "status", "status": "thinking"}      then waits thinking_delay
        {"type": "status", "status": "generating"}    then waits generating_delay
        {"type": "chunk", "text": "word "}            one per word, at tokens_per_second
        {"type": "done", "full_text": "..."}

    The answer is, by default, the FastAPI example's ``mock_llm_stream`` answer for the prompt
    (:data:`DEFAULT_TEMPLATE`). Set ``response_template`` (placeholders ``{prompt}`` and
    ``{prompt_preview}``), a fixed ``response``, or ``response_words`` (that many words drawn with
    ``seed``, the same for the same seed) instead. Chunks are the answer's whitespace-separated
    words, each carrying the whitespace after it (the first also any before it): they
    concatenate to the answer exactly, and are ``"word "`` ... ``"word"`` for words separated by
    single spaces.

    ``fail_after: N`` makes the step raise ``fail_error`` (``"ErrorType: message"``, default a
    ``RuntimeError``) after emitting N chunks; when the answer has N words or fewer, after the
    last chunk, before ``done``.

    Returns: ``full_text`` (the answer) and ``word_count``; a single return under another name
    receives ``full_text``. The default is ``returns=["full_text"]``.
    """

    returns: list[str] = Field(
        default_factory=lambda: ["full_text"],
        description="Output parameters: full_text and/or word_count; one other name receives "
                    "full_text.")
    prompt_parameter: str = Field(default="prompt", min_length=1,
                                  description="The parameter that holds the prompt.")
    thinking_delay: float = Field(default=0.3, ge=0, allow_inf_nan=False,
                                  description="Seconds between 'thinking' and 'generating'.")
    generating_delay: float = Field(
        default=0.1, ge=0, allow_inf_nan=False,
        description="Seconds between 'generating' and the first chunk.")
    tokens_per_second: float = Field(
        default=20.0, ge=0, allow_inf_nan=False,
        description="Chunk rate; 0 streams as fast as the consumer reads (benchmarks).")
    response_template: str = Field(
        default=DEFAULT_TEMPLATE,
        description="The answer, from the prompt: placeholders {prompt} and {prompt_preview} "
                    "(the first 50 characters, '...' when cut).")
    response: str | None = Field(default=None, description="A fixed answer, whatever the prompt.")
    response_words: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="Answer with this many words drawn from a small vocabulary with `seed`.")
    seed: int | None = Field(
        default=None, description="Seed of the words drawn for response_words (default 0).")
    fail_after: int | None = Field(
        default=None, ge=0, description="Fail after emitting this many chunks.")
    fail_error: str | None = Field(
        default=None,
        description="The injected error, 'ErrorType: message' (a built-in exception name or a "
                    "dotted path); default RuntimeError.")

    _error_type: type[Exception] = PrivateAttr(default=RuntimeError)
    _error_message: str | None = PrivateAttr(default=None)

    @field_validator("response_template")
    @classmethod
    def _valid_template(cls, value: str) -> str:
        return check_template(value)

    @model_validator(mode="after")
    def _consistent(self) -> MockLLMTask:
        # Checks look at values, not at which fields were given, so that
        # model_validate(task.model_dump()) round-trips.
        sources = [name for name in ("response", "response_words")
                   if getattr(self, name) is not None]
        if self.response_template != DEFAULT_TEMPLATE:
            sources.insert(0, "response_template")
        if len(sources) > 1:
            raise ValueError(
                f"set only one of response_template, response, response_words (got "
                f"{', '.join(sources)})")
        if self.seed is not None and self.response_words is None:
            raise ValueError("seed only applies to response_words; set response_words too")
        if self.fail_error is not None and self.fail_after is None:
            raise ValueError("fail_error only applies with fail_after; set fail_after (the "
                             "number of chunks to emit before failing)")
        if len(self.returns) > 1:
            unknown = [name for name in self.returns if name not in OUTPUTS]
            if unknown:
                raise ValueError(
                    f"returns {unknown} are not outputs of mock-llm; it returns "
                    f"{', '.join(OUTPUTS)} (a single return under another name receives "
                    "full_text)")
        if self.fail_after is not None:
            self._error_type, self._error_message = parse_fail_error(
                self.fail_error or "RuntimeError")
        return self

    def answer(self, prompt: str) -> str:
        """The full answer this task gives to ``prompt``."""
        if self.response is not None:
            return self.response
        if self.response_words is not None:
            return random_words(self.response_words, self.seed or 0)
        return render(self.response_template, prompt)

    def reads_parameters(self) -> frozenset[str]:
        """Only the prompt parameter."""
        return frozenset({self.prompt_parameter})

    def _prompt(self, ctx: TaskContext) -> str:
        if self.response is not None or self.response_words is not None:
            value = ctx.parameters.get(self.prompt_parameter, "")
        else:
            value = ctx.parameter(self.prompt_parameter)
        if not isinstance(value, str):
            raise TaskError(
                f"step '{ctx.step}': parameter '{self.prompt_parameter}' (the prompt) must be a "
                f"string, got {type(value).__name__}")
        return value

    def _failure(self, step: str, emitted: int) -> Exception:
        message = self._error_message or (
            f"mock-llm step '{step}': injected failure after {emitted} chunks")
        return self._error_type(message)

    async def execute(self, ctx: TaskContext) -> Mapping[str, Any]:
        """Stream the answer (see the class docstring) and return its outputs."""
        text = self.answer(self._prompt(ctx))
        pieces = chunks(text)
        emit = ctx.emit
        await emit({"type": "status", "status": "thinking"})
        if self.thinking_delay:
            await asyncio.sleep(self.thinking_delay)
        await emit({"type": "status", "status": "generating"})
        if self.generating_delay:
            await asyncio.sleep(self.generating_delay)
        fail_after = self.fail_after
        interval = 1.0 / self.tokens_per_second if self.tokens_per_second else 0.0
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for emitted, piece in enumerate(pieces):
            if emitted == fail_after:
                raise self._failure(ctx.step, emitted)
            await emit({"type": "chunk", "text": piece})
            if interval:
                # Pace against a schedule, so emit overhead does not slow the rate; after a
                # stall (a slow consumer) restart the schedule instead of bursting to catch up.
                next_at += interval
                now = loop.time()
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                else:
                    next_at = now
        if fail_after is not None:
            raise self._failure(ctx.step, len(pieces))
        await emit({"type": "done", "full_text": text})
        outputs: dict[str, Any] = {"full_text": text, "word_count": len(text.split())}
        if len(self.returns) == 1 and self.returns[0] not in outputs:
            outputs[self.returns[0]] = text
        return outputs
