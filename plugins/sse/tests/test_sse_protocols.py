"""The protocol adapters (docs/protocols.md) on recorded runs: frames, ids, resume, retries,
the shapes each protocol carries; AG-UI events validated by ``ag-ui-protocol``'s models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ag_ui.core import Event as AGUIEvent
from hypothesis import given, settings, strategies as st
from pydantic import TypeAdapter
from runstream import EventRecord, Runtime
from runstream_sse import ADAPTERS, make_adapter, openai_completion

from ._protocol_runs import HOSTILE, failed_run, mock_run, retried_run, shapes_run

AGUI_EVENT: TypeAdapter[Any] = TypeAdapter(AGUIEvent)


def frames(text: str) -> list[tuple[int, str]]:
    """(id, data) of each frame: one data line, and an id line on the last frame of each
    record; a frame without one belongs to the record of the next id."""
    out: list[tuple[int, str]] = []
    waiting: list[str] = []
    for block in text.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert lines[-1].startswith("data: ")
        waiting.append(lines[-1][6:])
        if len(lines) == 2:
            assert lines[0].startswith("id: ")
            out.extend((int(lines[0][4:]), data) for data in waiting)
            waiting = []
        else:
            assert len(lines) == 1
    assert waiting == [] and (text.endswith("\n\n") or text == "")
    return out


def payloads(text: str) -> list[Any]:
    return [data if data == "[DONE]" else json.loads(data) for _, data in frames(text)]


def encode(protocol: str, run_id: str, records: list[EventRecord], **options: Any) -> str:
    return make_adapter(protocol, run_id=run_id, **options).encode(records)


def agui_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")


def vercel_text(chunks: list[Any]) -> str:
    return "".join(c["delta"] for c in chunks if isinstance(c, dict) and c["type"] == "text-delta")


def openai_text(chunks: list[Any]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks
                   if isinstance(c, dict) and c.get("choices"))


@pytest.mark.parametrize("protocol", sorted(ADAPTERS))
@pytest.mark.parametrize("prompt", ["Hello, how are you?", *HOSTILE])
async def test_frames_carry_ids_and_the_text_adds_up(runtime: Runtime, protocol: str,
                                                      prompt: str) -> None:
    run_id, records, text = await mock_run(runtime, prompt)
    out = encode(protocol, run_id, records)
    seqs = {record[0] for record in records}
    ids = [frame_id for frame_id, _ in frames(out)]
    assert ids == sorted(ids) and set(ids) <= seqs
    got = payloads(out)
    reader = {"vercel-ai": vercel_text, "ag-ui": agui_text, "openai": openai_text}[protocol]
    assert reader(got) == text
    if protocol == "ag-ui":
        for event in got:
            AGUI_EVENT.validate_python(event)
        assert got[0]["type"] == "RUN_STARTED" and got[-1]["type"] == "RUN_FINISHED"
    else:
        assert got[-1] == "[DONE]"


@pytest.mark.parametrize("protocol", sorted(ADAPTERS))
async def test_encoding_is_deterministic_and_resumes_after_any_id(runtime: Runtime,
                                                                  protocol: str) -> None:
    run_id, records, _ = await shapes_run(runtime)
    whole = encode(protocol, run_id, records)
    assert whole == encode(protocol, run_id, records)
    # Fed in batches, as a live stream is, the frames are the same.
    adapter = make_adapter(protocol, run_id=run_id)
    assert "".join(adapter.encode(records[i:i + 3]) for i in range(0, len(records), 3)) == whole
    assert adapter.finished
    for cut in range(1, len(records) + 1):
        resumed = make_adapter(protocol, run_id=run_id).encode(records, after=cut)
        tail = [(i, d) for i, d in frames(whole) if i > cut]
        got = frames(resumed)
        # The resumed stream is the rest of the whole one, after the frames a protocol sends
        # again for a new reader (the open message, for Vercel and AG-UI).
        assert got[len(got) - len(tail):] == tail
        assert all(i > cut for i, _ in got)
        # A client cut between two frames of one record has read the id before that record.
        assert not resumed or resumed.startswith("data: ") or resumed.startswith("id: ")


async def test_vercel_maps_every_shape(runtime: Runtime) -> None:
    run_id, records, text = await shapes_run(runtime)
    chunks = payloads(encode("vercel-ai", run_id, records))
    types = [c["type"] if isinstance(c, dict) else c for c in chunks]
    assert types[0] == "start" and chunks[0]["messageId"] == f"msg-{run_id}"
    assert types[-3:] == ["finish-step", "finish", "[DONE]"]
    assert chunks[-2]["finishReason"] == "stop"
    assert chunks[-2]["messageMetadata"]["usage"]["total_tokens"] == 16
    for expected in ("reasoning-start", "reasoning-delta", "reasoning-end", "text-start",
                     "text-end", "tool-input-start", "tool-input-delta",
                     "tool-input-available", "tool-output-available", "tool-input-error",
                     "data-sources", "data-runstream-status", "data-runstream-event",
                     "start-step"):
        assert expected in types, expected
    assert vercel_text(chunks) == text
    available = next(c for c in chunks if c["type"] == "tool-input-available")
    assert available["input"] == {"city": "Paris"}
    unknown = [c["data"]["event"] for c in chunks[:-1] if c["type"] == "data-runstream-event"]
    assert unknown == [{"type": "tool_result", "id": "nobody", "result": 1},
                       {"type": "chunk", "text": 42},
                       {"type": "something-else", "value": None}]


async def test_agui_maps_every_shape(runtime: Runtime) -> None:
    run_id, records, text = await shapes_run(runtime)
    events = payloads(encode("ag-ui", run_id, records, thread_id="t1", agui_run_id="r1"))
    for event in events:
        AGUI_EVENT.validate_python(event)
    types = [e["type"] for e in events]
    assert events[0] == {"type": "RUN_STARTED", "threadId": "t1", "runId": "r1"}
    assert types[-2:] == ["STEP_FINISHED", "RUN_FINISHED"]
    assert events[-1]["usage"] == [{"inputTokens": 12, "outputTokens": 4, "totalTokens": 16}]
    for expected in ("STEP_STARTED", "REASONING_START", "REASONING_MESSAGE_CONTENT",
                     "REASONING_END", "TEXT_MESSAGE_START", "TEXT_MESSAGE_END",
                     "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT",
                     "CUSTOM"):
        assert expected in types, expected
    assert agui_text(events) == text
    assert {e["name"] for e in events if e["type"] == "CUSTOM"} == {
        "runstream.status", "sources", "runstream.event"}


async def test_openai_maps_text_reasoning_and_tool_calls(runtime: Runtime) -> None:
    run_id, records, text = await shapes_run(runtime)
    chunks = payloads(encode("openai", run_id, records, model="m", include_usage=True))
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["total_tokens"] == 16
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"
    assert openai_text(chunks) == text
    deltas = [c["choices"][0]["delta"] for c in chunks[:-2]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == (
        "The user greets me, so I answer.\n")
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    assert [c["index"] for c in calls] == [0, 0, 0, 1]
    assert calls[0]["function"]["name"] == "get_weather"
    assert "".join(c["function"]["arguments"] for c in calls[:3]) == '{"city": "Paris"}'
    status, body = openai_completion(records, run_id=run_id, model="m")
    assert status == 200 and body["choices"][0]["message"]["content"] == text
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
    assert [c["id"] for c in body["choices"][0]["message"]["tool_calls"]] == ["call_1",
                                                                               "call_2"]


async def test_a_failed_run_ends_with_each_protocols_error(runtime: Runtime) -> None:
    run_id, records, partial = await failed_run(runtime)
    vercel = payloads(encode("vercel-ai", run_id, records))
    assert vercel[-3:] == [{"type": "error",
                            "errorText": "RuntimeError: upstream model overloaded"},
                           {"type": "finish", "finishReason": "error"}, "[DONE]"]
    assert vercel_text(vercel) == partial
    agui = payloads(encode("ag-ui", run_id, records))
    for event in agui:
        AGUI_EVENT.validate_python(event)
    assert agui[-2]["type"] == "TEXT_MESSAGE_END"
    assert agui[-1] == {"type": "RUN_ERROR", "message": "RuntimeError: upstream model overloaded",
                        "code": "RuntimeError"}
    openai = payloads(encode("openai", run_id, records))
    assert openai[-2]["error"]["message"] == "RuntimeError: upstream model overloaded"
    status, body = openai_completion(records, run_id=run_id)
    assert status == 500 and body["error"]["code"] == "RuntimeError"
    assert openai_completion(records[:-1], run_id=run_id)[0] == 500


async def test_a_retry_names_the_void_parts(runtime: Runtime) -> None:
    run_id, records, text = await retried_run(runtime)
    vercel = payloads(encode("vercel-ai", run_id, records))
    retry = next(c for c in vercel if c["type"] == "data-runstream-retry")
    void = set(retry["data"]["void"])
    kept = "".join(c["delta"] for c in vercel
                   if isinstance(c, dict) and c["type"] == "text-delta" and c["id"] not in void)
    assert kept == text and retry["data"]["attempt"] == 1
    agui = payloads(encode("ag-ui", run_id, records))
    for event in agui:
        AGUI_EVENT.validate_python(event)
    retry = next(e for e in agui if e["type"] == "CUSTOM")
    assert retry["name"] == "runstream.retry"
    kept = "".join(e["delta"] for e in agui if e["type"] == "TEXT_MESSAGE_CONTENT"
                   and e["messageId"] not in retry["value"]["void"])
    assert kept == text
    assert [e["type"] for e in agui].count("STEP_STARTED") == 1
    openai = payloads(encode("openai", run_id, records))
    assert any(c.get("runstream", {}).get("retry") for c in openai if isinstance(c, dict))
    status, body = openai_completion(records, run_id=run_id)
    assert status == 200 and body["choices"][0]["message"]["content"] == text


async def test_a_cancelled_run(runtime: Runtime) -> None:
    run_id, records, _ = await mock_run(runtime, "hi")
    cancelled = [*records[:-1], (records[-1][0], records[-1][1], "run.cancelled", None,
                                 {"reason": "client disconnected"})]
    vercel = payloads(encode("vercel-ai", run_id, cancelled))
    assert vercel[-2:] == [{"type": "abort", "reason": "client disconnected"}, "[DONE]"]
    agui = payloads(encode("ag-ui", run_id, cancelled))
    assert agui[-1]["outcome"] == {"type": "cancelled"}
    AGUI_EVENT.validate_python(agui[-1])
    assert payloads(encode("openai", run_id, cancelled))[-2]["error"]["code"] == "cancelled"


def test_an_unknown_protocol_is_named() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'vercel'; protocols: runstream, "
                                         "ag-ui, openai, vercel-ai"):
        make_adapter("vercel", run_id="r")
    assert ADAPTERS["vercel-ai"](run_id="r").headers == {"x-vercel-ai-ui-message-stream": "v1"}


@pytest.mark.parametrize("protocol", sorted(ADAPTERS))
def test_malformed_end_fields_never_reach_a_frame(protocol: str) -> None:
    records: list[EventRecord] = [
        (1, 1.0, "run.started", None, {}), (2, 1.0, "step.started", "llm", {"attempt": 1}),
        (3, 1.0, "step.event", "llm", {"type": "chunk", "text": "hi"}),
        (4, 1.0, "step.event", "llm", {"type": "done", "finish_reason": {"no": 1},
                                       "usage": "lots"}),
        (5, 1.0, "step.event", "llm", {"type": "tool_call_start", "id": "c", "name": "t"}),
        (6, 1.0, "step.event", "llm", {"type": "tool_call_start", "id": "c", "name": "t"}),
        (7, 1.0, "step.completed", "llm", {}), (8, 1.0, "run.completed", None, {})]
    got = payloads(encode(protocol, "r", records, **({"include_usage": True}
                                                     if protocol == "openai" else {})))
    text = json.dumps(got)
    assert '{"no": 1}' not in text and "lots" not in text
    if protocol == "vercel-ai":
        assert got[-2]["finishReason"] == "stop" and "usage" not in got[-2]["messageMetadata"]
        assert [c["type"] for c in got[:-1]].count("tool-input-start") == 1
    elif protocol == "openai":
        assert got[-3]["choices"][0]["finish_reason"] == "tool_calls"  # the run called one
        assert got[-2]["usage"] == {"prompt_tokens": 0, "completion_tokens": 1,
                                    "total_tokens": 1}
    else:
        assert "usage" not in got[-1]
        for event in got:
            AGUI_EVENT.validate_python(event)


SHAPES = st.one_of(
    st.builds(lambda t: {"type": "chunk", "text": t}, st.text()),
    st.builds(lambda t: {"type": "reasoning", "text": t}, st.text()),
    st.builds(lambda i: {"type": "tool_call_start", "id": f"c{i}", "name": "f"}, st.integers(0, 2)),
    st.builds(lambda i, a: {"type": "tool_call_delta", "id": f"c{i}", "arguments": a},
              st.integers(0, 2), st.text()),
    st.builds(lambda i, a: {"type": "tool_call_end", "id": f"c{i}", "name": "f", "arguments": a},
              st.integers(0, 2), st.sampled_from(["{}", '{"a": 1}', "{bad"])),
    st.builds(lambda i: {"type": "tool_result", "id": f"c{i}", "result": [i]}, st.integers(0, 2)),
    st.builds(lambda n: {"type": "data", "name": n, "data": {"n": n}}, st.text(max_size=5)),
    st.just({"type": "status", "status": "generating"}),
    st.just({"type": "done", "full_text": "", "finish_reason": "length"}),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
#: A step's record: an event, or the step's retry, or its end.
STEP_RECORDS = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.one_of(
    SHAPES.map(lambda d: ("step.event", d)),
    st.just(("step.retrying", {"attempt": 1, "next_attempt": 2})))), max_size=25)


def runs(events: list[tuple[str, tuple[str, dict[str, Any]]]], end: str) -> list[EventRecord]:
    script: list[tuple[str, str | None, dict[str, Any]]] = [
        ("run.started", None, {}), ("step.started", "a", {}), ("step.started", "b", {})]
    for step, (type_, data) in events:
        script.append((type_, step, data))
        if type_ == "step.retrying":
            script.append(("step.started", step, {}))
    script += [("step.completed", "a", {}), ("step.completed", "b", {}), (end, None, {})]
    return [(seq, 1.0, t, s, d) for seq, (t, s, d) in enumerate(script, start=1)]


@given(STEP_RECORDS, st.sampled_from(["run.completed", "run.failed", "run.cancelled"]))
@settings(max_examples=150, deadline=None)
def test_any_run_makes_well_formed_resumable_frames(
        events: list[tuple[str, tuple[str, dict[str, Any]]]], end: str) -> None:
    records = runs(events, end)
    texts = "".join(d["text"] for _, (t, d) in events if t == "step.event"
                    and d.get("type") == "chunk" and isinstance(d.get("text"), str))
    for protocol in sorted(ADAPTERS):
        whole = encode(protocol, "r", records)
        got = payloads(whole)
        assert whole == encode(protocol, "r", records)
        reader = {"vercel-ai": vercel_text, "ag-ui": agui_text, "openai": openai_text}[protocol]
        assert reader(got) == texts
        if protocol == "ag-ui":
            for event in got:
                AGUI_EVENT.validate_python(event)
            assert got[-1]["type"] in ("RUN_FINISHED", "RUN_ERROR")
        for cut in range(1, len(records) + 1, 3):
            tail = [(i, d) for i, d in frames(whole) if i > cut]
            resumed = frames(make_adapter(protocol, run_id="r").encode(records, after=cut))
            assert resumed[len(resumed) - len(tail):] == tail


def test_ids_and_names_from_the_request_are_encoded_not_pasted() -> None:
    """Templates of the hot path hold the request's model and ids as JSON."""
    records: list[EventRecord] = [
        (1, 1.0, "run.started", None, {}),
        (2, 1.0, "step.event", "llm", {"type": "chunk", "text": "\x00"}),
        (3, 1.0, "run.completed", None, {})]
    odd = '\x00"}\n\u2028'
    chunks = payloads(encode("openai", odd, records, model=odd))
    assert chunks[1]["choices"][0]["delta"] == {"content": "\x00"}
    assert chunks[1]["model"] == odd and chunks[1]["id"] == f"chatcmpl-{odd}"
    events = payloads(encode("ag-ui", odd, records, thread_id=odd, agui_run_id=odd))
    assert events[2] == {"type": "TEXT_MESSAGE_CONTENT", "messageId": f"text-{odd}-2",
                         "delta": "\x00"}
    assert payloads(encode("vercel-ai", odd, records))[0]["messageId"] == f"msg-{odd}"
