"""The mock models' chunks add up to their answer, for any prompt (issue 14): every protocol's
client rebuilds the text by concatenating deltas."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from runstream import AsyncPipeline, Runtime
from runstream_mock_llm import MockLLMTask
from runstream_mock_llm._text import chunks

from examples.fastapi_llm.llm_mock import mock_llm_stream
from tests._mock_llm_plan import plan_answer, plan_events, plan_pieces

FAST: dict[str, Any] = {"thinking_delay": 0, "generating_delay": 0, "tokens_per_second": 0}

#: Whitespace that ``str.split()`` used to fold into one space, and other text clients break.
HOSTILE = [
    "line one\nline two", "cr\rcr", "crlf\r\n", "a\u2028b", "a\u2029b", "a\x85b",
    "runs   of    spaces", "  leading and trailing  ", "\t\v\f\x1c\x1d\x1e\x1f",
    "emoji 😀 👩\u200d👩\u200d👧 🇫🇷", "\u3000ideographic\u00a0nbsp", "   ", "\n", "",
    "data: x\n\nid: 9\r\n", ("lorem ipsum \u2028\n\r\x85 😀  " * 1000)[:20_000],
]
#: Ordinary prompts, whose transcript the plan pins: words separated by single spaces.
ORDINARY = ["Hello, how are you?", "x" * 51, "y" * 50, "What is 2 squared?"]

words = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1).filter(
    lambda text: not any(char.isspace() for char in text))


@given(st.text())
@settings(max_examples=300)
def test_chunks_concatenate_to_any_text(text: str) -> None:
    pieces = chunks(text)
    assert "".join(pieces) == text
    assert all(pieces)
    assert pieces == plan_pieces(text)


@given(st.lists(words, min_size=1, max_size=30))
def test_single_spaced_words_keep_the_plans_transcript(parts: list[str]) -> None:
    text = " ".join(parts)
    assert chunks(text) == [part + " " for part in parts[:-1]] + [parts[-1]]


@pytest.mark.parametrize("prompt", HOSTILE + ORDINARY)
async def test_mock_llm_chunks_add_up_to_full_text(runtime: Runtime, prompt: str) -> None:
    async def events_of(task: MockLLMTask) -> list[dict[str, Any]]:
        return [e async for e in AsyncPipeline("p", [task]).execute_streaming(
            parameters={"prompt": prompt}, config=runtime)]

    assert await events_of(MockLLMTask(name="llm", **FAST)) == plan_events(prompt)
    for task in (MockLLMTask(name="llm", response=prompt, **FAST),
                 MockLLMTask(name="llm", response_template="{prompt}", **FAST)):
        events = await events_of(task)
        assert events[-1] == {"type": "done", "full_text": prompt}
        assert "".join(e["text"] for e in events if e["type"] == "chunk") == prompt


@pytest.mark.parametrize("prompt", HOSTILE + ORDINARY)
async def test_example_mock_llm_stream_adds_up_to_full_text(prompt: str) -> None:
    events = [e async for e in mock_llm_stream(prompt, delay_scale=0)]
    assert events[-1] == {"type": "done", "full_text": plan_answer(prompt)}
    assert "".join(e["text"] for e in events if e["type"] == "chunk") == plan_answer(prompt)
    assert events == plan_events(prompt)


@pytest.mark.parametrize("prompt", ORDINARY)
async def test_ordinary_prompts_stream_word_then_space(prompt: str) -> None:
    texts = [e["text"] for e in plan_events(prompt) if e["type"] == "chunk"]
    answer_words = plan_answer(prompt).split()
    assert texts == [w + " " for w in answer_words[:-1]] + [answer_words[-1]]
