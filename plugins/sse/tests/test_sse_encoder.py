"""The SSE encoder (runstream_sse._encoder): WHATWG framing, read back by httpx-sse's parser."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent
from hypothesis import given, settings, strategies as st
from runstream_sse._encoder import (
    PING,
    encode_comment,
    encode_event,
    json_dumps,
    json_frame,
    to_bytes,
)


def parse(payload: bytes, cuts: list[int] | None = None) -> list[ServerSentEvent]:
    """Parse ``payload`` with httpx-sse, delivered in chunks split at ``cuts``."""
    points = sorted({c for c in (cuts or []) if 0 < c < len(payload)})
    chunks = [payload[a:b] for a, b in zip([0, *points], [*points, len(payload)], strict=True)]

    def stream() -> Iterator[bytes]:
        yield from chunks

    response = httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=stream())
    return list(EventSource(response).iter_sse())


def sse_lines(text: str) -> str:
    """What a conforming parser makes of a data value: CRLF and CR become LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


# Any text, including every control character and the line breaks that SSE does (CR, LF) and
# does not (U+2028, U+0085, VT, FF) treat as line ends.
TEXT = st.text(st.characters(codec="utf-8"), max_size=200) | st.lists(
    st.sampled_from(["\r", "\n", "\r\n", "\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x0c",
                     "\x1c", "\x1d", "\x1e", " ", ":",
                     "data: x", "id: 9", "event: evil", "retry: 1", "é", "\U0001f600"]),
    max_size=30).map("".join)
FIELD = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=50)


@settings(max_examples=300, deadline=None)
@given(data=TEXT, event=st.none() | FIELD.filter(bool), id=st.none() | FIELD,
       cuts=st.lists(st.integers(0, 2000), max_size=6))
def test_any_text_round_trips_and_never_injects_fields(
        data: str, event: str | None, id: str | None, cuts: list[int]) -> None:
    payload = to_bytes(encode_event(data, event=event, id=id))
    events = parse(payload, cuts)
    assert len(events) == 1  # nothing in data can end the event early or start another
    (got,) = events
    assert got.data == sse_lines(data)
    assert got.event == (event or "message")
    assert got.id == (id or "")
    assert got.retry is None


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=8), st.lists(st.integers(0, 3000), max_size=8))
def test_a_stream_of_events_keeps_its_boundaries(datas: list[str], cuts: list[int]) -> None:
    payload = to_bytes("".join(encode_event(d, id=str(i)) for i, d in enumerate(datas)))
    events = parse(payload, cuts)
    assert [(e.id, e.data) for e in events] == [(str(i), sse_lines(d))
                                                for i, d in enumerate(datas)]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(TEXT, JSON_VALUES, max_size=6), seq=st.integers(1, 10**12),
       event=st.none() | st.sampled_from(["run.failed", "step.started"]),
       cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_json_frames_round_trip_exactly(data: dict[str, Any], seq: int, event: str | None,
                                        cuts: list[int]) -> None:
    events = parse(to_bytes(json_frame(data, id=seq, event=event)), cuts)
    assert len(events) == 1
    assert json.loads(events[0].data) == data
    assert events[0].id == str(seq)
    assert events[0].event == (event or "message")


ANY_FLOATS = st.recursive(
    st.none() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12)


def _strict_json(text: str) -> Any:
    """What JSON.parse accepts: no NaN, Infinity or -Infinity."""
    def reject(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=reject)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(TEXT, ANY_FLOATS, max_size=6))
def test_non_finite_floats_become_null_and_the_frame_is_always_json(data: dict[str, Any]
                                                                     ) -> None:
    events = parse(to_bytes(json_frame(data, id=1)), [])
    assert _strict_json(events[0].data) == _finite(data)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(TEXT, ANY_FLOATS, max_size=6), seq=st.integers(1, 10**12),
       event=st.none() | st.sampled_from(["run.failed", "step.started"]))
def test_every_json_frame_survives_str_splitlines(data: dict[str, Any], seq: int,
                                                  event: str | None) -> None:
    """A reader that splits like str.splitlines (httpx iter_lines(), requests
    iter_lines(decode_unicode=True)) sees the same lines as an SSE parser."""
    text = to_bytes(json_frame(data, id=seq, event=event)).decode("utf-8")
    lines = text.splitlines()
    assert lines == text.split("\n")[:-1]
    assert lines[-1] == "" and lines[-2].startswith("data: ")
    assert _strict_json(lines[-2].removeprefix("data: ")) == _finite(data)


def test_splitlines_separators_are_escaped_in_json() -> None:
    text = "\x85\u2028\u2029\x0b\x0c\x1c\x1d\x1e\r\n"
    dumped = json_dumps({"t": text, text: 1})
    assert dumped == ('{"t": "\\u0085\\u2028\\u2029\\u000b\\f\\u001c\\u001d\\u001e\\r\\n", '
                      '"\\u0085\\u2028\\u2029\\u000b\\f\\u001c\\u001d\\u001e\\r\\n": 1}')
    assert dumped.splitlines() == [dumped]
    assert json.loads(dumped) == {"t": text, text: 1}
    # With NaN (the second encoder's path) too.
    assert json_dumps({"t": "\u2028", "x": math.nan}) == '{"t": "\\u2028", "x": null}'


def test_nan_and_infinity_on_the_wire() -> None:
    frame = json_frame({"score": math.nan, "hi": math.inf, "lo": -math.inf, "ok": 0.5,
                        "nested": [{"x": math.nan}], "when": date(2026, 1, 2)}, id=4)
    assert frame == ('id: 4\ndata: {"score": null, "hi": null, "lo": null, "ok": 0.5, '
                     '"nested": [{"x": null}], "when": "2026-01-02"}\n\n')
    assert json_dumps({math.inf: 1}) == '{"inf": 1}'
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular"):
        json_dumps(cycle)


def test_json_frame_is_one_data_line_with_the_plan_separators() -> None:
    frame = json_frame({"type": "status", "status": "thinking"}, id=3)
    assert frame == 'id: 3\ndata: {"type": "status", "status": "thinking"}\n\n'
    named = json_frame({"error_type": "ValueError"}, id=9, event="run.failed")
    assert named == 'event: run.failed\nid: 9\ndata: {"error_type": "ValueError"}\n\n'


def test_json_keeps_unicode_readable_and_escapes_line_breaks() -> None:
    frame = json_frame({"text": "é\n\r\u2028😀"}, id=1)
    assert frame.count("\n") == 3  # id line, data line, blank line: nothing raw inside
    assert "\u2028" not in frame and "\\u2028" in frame
    assert "é" in frame and "😀" in frame


def test_lone_surrogates_become_json_escapes() -> None:
    payload = to_bytes(json_frame({"text": "a\ud800b"}, id=1))
    assert b"\\ud800" in payload
    (event,) = parse(payload)
    assert json.loads(event.data) == {"text": "a\ud800b"}


def test_values_json_cannot_hold_are_written_as_text() -> None:
    import datetime

    from pydantic import BaseModel

    class Point(BaseModel):
        x: int

    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    text = json_dumps({"when": when, "model": Point(x=1), "other": {1, 2} and object})
    decoded = json.loads(text)
    assert decoded["when"] == "2026-01-02T03:04:05"
    assert decoded["model"] == {"x": 1}
    assert decoded["other"].startswith("<class")


def test_data_line_ends_are_split_only_on_cr_and_lf() -> None:
    assert encode_event("a\r\nb\rc\nd") == "data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert encode_event("a\u2028b\x85c") == "data: a\u2028b\x85c\n\n"
    assert encode_event("") == "data: \n\n"
    assert encode_event("x\n") == "data: x\ndata: \n\n"


def test_a_leading_space_survives() -> None:
    (event,) = parse(to_bytes(encode_event("  two spaces")))
    assert event.data == "  two spaces"


@pytest.mark.parametrize("bad", ["a\nb", "a\rb"])
def test_event_names_and_ids_cannot_hold_line_breaks(bad: str) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        encode_event("x", event=bad)
    with pytest.raises(ValueError, match="CR or LF"):
        encode_event("x", id=bad)


def test_ids_cannot_hold_nul_and_retry_is_not_negative() -> None:
    with pytest.raises(ValueError, match="NUL"):
        encode_event("x", id="a\0b")
    with pytest.raises(ValueError, match="retry"):
        encode_event("x", retry=-1)
    (event,) = parse(to_bytes(encode_event("x", retry=1500)))
    assert event.retry == 1500


def test_comments_and_pings_are_not_events() -> None:
    payload = PING + to_bytes(encode_comment("line one\nline two")) + to_bytes(
        encode_event("after"))
    assert [e.data for e in parse(payload)] == ["after"]
