"""The adapters' streams read by the protocols' own clients, offline (issue 14).

- Node ``ai`` (v6): ``parseJsonEventStream`` with the package's ``uiMessageChunkSchema`` (every
  chunk must validate) and ``readUIMessageStream`` (the fold ``useChat`` uses) into a message.
- Node ``@ag-ui/client``: an ``HttpAgent`` whose ``fetch`` answers the stream, with the event
  verification its run pipeline always applies.
- Python ``openai``: ``AsyncOpenAI`` against a Starlette app answering the recorded stream
  through httpx's ASGI transport (no socket).

The npm packages are installed at test time into ``.npm-protocols/`` (in .gitignore), pinned to
versions that run on Node 20.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from runstream import EventRecord, Runtime
from runstream_sse import make_adapter, openai_completion
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests._npm import install_npm_packages

from ._protocol_runs import HOSTILE, failed_run, mock_run, retried_run, shapes_run

ROOT = Path(__file__).resolve().parents[3]
NPM_DIR = ROOT / ".npm-protocols"
NPM_PACKAGES = {"ai": "6.0.325", "@ag-ui/client": "1.0.0"}
TIMEOUT = 60

VERCEL = """
import {readFileSync} from "node:fs";
import {parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema} from "ai";
const invalid = [], errors = [], chunks = [];
let message;
for (const file of process.argv.slice(2)) {
  const body = new Response(readFileSync(file)).body;
  const parsed = [];
  for await (const result of parseJsonEventStream({stream: body, schema: uiMessageChunkSchema})) {
    if (result.success) parsed.push(result.value);
    else invalid.push(String(result.error));
  }
  chunks.push(...parsed.map((c) => c.type));
  const stream = new ReadableStream({start(controller) {
    for (const chunk of parsed) controller.enqueue(chunk);
    controller.close();
  }});
  for await (const snapshot of readUIMessageStream({message, stream,
      onError: (e) => errors.push(String(e.message ?? e))})) message = snapshot;
}
const parts = message === undefined ? [] : message.parts;
const text = parts.filter((p) => p.type === "text").map((p) => p.text).join("");
process.stdout.write(JSON.stringify({invalid, errors, chunks, text, id: message?.id,
                                     parts: parts.map((p) => p.type)}));
"""

AGUI = """
import {readFileSync} from "node:fs";
import {HttpAgent} from "@ag-ui/client";
const body = readFileSync(process.argv[2]);
const agent = new HttpAgent({url: "http://127.0.0.1:9/agui", threadId: "thread-1",
  fetch: async () => new Response(body, {headers: {"Content-Type": "text/event-stream"}})});
const events = [];
let error = null;
try {
  await agent.runAgent({runId: "agui-run-1"}, {onEvent: ({event}) => { events.push(event.type); }});
} catch (e) {
  error = String(e.message ?? e);
}
const text = agent.messages.filter((m) => m.role === "assistant")
  .map((m) => typeof m.content === "string" ? m.content : "").join("");
process.stdout.write(JSON.stringify({events, error, text}));
"""


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """The npm clients, installed once into NPM_DIR (kept between runs; .gitignore'd)."""
    install_npm_packages(NPM_DIR, "runstream-protocol-clients", NPM_PACKAGES,
                         "the protocol clients")
    (NPM_DIR / "vercel.mjs").write_text(VERCEL)
    (NPM_DIR / "agui.mjs").write_text(AGUI)
    return NPM_DIR


def node(clients: Path, script: str, texts: list[str], tmp_path: Path) -> dict[str, Any]:
    files = []
    for i, text in enumerate(texts):
        path = tmp_path / f"stream-{i}.txt"
        # As the server sends it: UTF-8, lone surrogates as JSON escapes (see to_bytes).
        path.write_bytes(text.encode("utf-8", "backslashreplace"))
        files.append(str(path))
    done = subprocess.run(["node", str(clients / script), *files], capture_output=True,
                          timeout=TIMEOUT, check=False, cwd=clients)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def encode(protocol: str, run_id: str, records: list[EventRecord], **options: Any) -> str:
    return make_adapter(protocol, run_id=run_id, **options).encode(records)


@pytest.mark.parametrize("prompt", ["Hello, how are you?", *HOSTILE])
async def test_ai_sdk_folds_the_message(runtime: Runtime, node_clients: Path, tmp_path: Path,
                                        prompt: str) -> None:
    run_id, records, text = await mock_run(runtime, prompt)
    result = node(node_clients, "vercel.mjs", [encode("vercel-ai", run_id, records)], tmp_path)
    assert result["invalid"] == [] and result["errors"] == []
    assert result["text"] == text
    assert result["id"] == f"msg-{run_id}"
    assert result["chunks"][0] == "start" and result["chunks"][-1] == "finish"


async def test_ai_sdk_reads_every_shape(runtime: Runtime, node_clients: Path,
                                        tmp_path: Path) -> None:
    run_id, records, text = await shapes_run(runtime)
    result = node(node_clients, "vercel.mjs", [encode("vercel-ai", run_id, records)], tmp_path)
    assert result["invalid"] == [] and result["errors"] == []
    assert result["text"] == text
    assert {"reasoning", "tool-get_weather", "tool-broken", "data-sources",
            "data-runstream-event", "step-start"} <= set(result["parts"])


async def test_ai_sdk_gets_the_error_of_a_failed_run(runtime: Runtime, node_clients: Path,
                                                     tmp_path: Path) -> None:
    run_id, records, partial = await failed_run(runtime)
    result = node(node_clients, "vercel.mjs", [encode("vercel-ai", run_id, records)], tmp_path)
    assert result["invalid"] == []
    assert result["errors"] == ["RuntimeError: upstream model overloaded"]
    assert "error" in result["chunks"] and result["text"] == partial


@pytest.mark.parametrize(("prompt", "read"), [
    ("Hello, how are you?", 5),  # cut between a part's text-start and its first delta
    ("Hello, how are you?", 8),
    (HOSTILE[-1], 5),
    (HOSTILE[-1], 12),
])
async def test_ai_sdk_folds_a_cut_and_resumed_stream_into_the_same_message(
        runtime: Runtime, node_clients: Path, tmp_path: Path, prompt: str, read: int) -> None:
    run_id, records, text = await mock_run(runtime, prompt)
    whole = encode("vercel-ai", run_id, records)
    frames = whole.split("\n\n")
    # The connection drops after `read` chunks; the client resumes with the last id it read.
    cut = "\n\n".join(frames[:read]) + "\n\n"
    last_id = max(int(line[4:]) for line in cut.split("\n") if line.startswith("id: "))
    resumed = make_adapter("vercel-ai", run_id=run_id).encode(records, after=last_id)
    result = node(node_clients, "vercel.mjs", [cut, resumed], tmp_path)
    assert result["invalid"] == [] and result["errors"] == []
    assert result["text"] == text
    assert result["id"] == f"msg-{run_id}"


@pytest.mark.parametrize("prompt", ["Hello, how are you?", *HOSTILE])
async def test_agui_client_verifies_and_folds_the_run(runtime: Runtime, node_clients: Path,
                                                      tmp_path: Path, prompt: str) -> None:
    run_id, records, text = await mock_run(runtime, prompt)
    out = encode("ag-ui", run_id, records, thread_id="thread-1", agui_run_id="agui-run-1")
    result = node(node_clients, "agui.mjs", [out], tmp_path)
    assert result["error"] is None
    assert result["text"] == text
    assert result["events"][0] == "RUN_STARTED" and result["events"][-1] == "RUN_FINISHED"


async def test_agui_client_reads_every_shape(runtime: Runtime, node_clients: Path,
                                             tmp_path: Path) -> None:
    run_id, records, text = await shapes_run(runtime)
    out = encode("ag-ui", run_id, records, thread_id="thread-1", agui_run_id="agui-run-1")
    result = node(node_clients, "agui.mjs", [out], tmp_path)
    assert result["error"] is None
    assert result["text"] == text
    assert {"TOOL_CALL_RESULT", "REASONING_MESSAGE_CONTENT", "CUSTOM"} <= set(result["events"])


async def test_agui_client_gets_run_error(runtime: Runtime, node_clients: Path,
                                          tmp_path: Path) -> None:
    run_id, records, _ = await failed_run(runtime)
    out = encode("ag-ui", run_id, records, thread_id="thread-1", agui_run_id="agui-run-1")
    result = node(node_clients, "agui.mjs", [out], tmp_path)
    assert result["events"][-1] == "RUN_ERROR"


def openai_app(records: list[EventRecord], run_id: str) -> Starlette:
    """POST /v1/chat/completions answering the recorded run, as the lead's route will."""

    async def completions(request: Request) -> Response:
        body = await request.json()
        if not body.get("stream"):
            status, answer = openai_completion(records, run_id=run_id, model=body["model"])
            # ensure_ascii: the text may hold a lone surrogate, which UTF-8 cannot.
            return Response(json.dumps(answer, ensure_ascii=True), status_code=status,
                            media_type="application/json")
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        adapter = make_adapter("openai", run_id=run_id, model=body["model"],
                               include_usage=usage)
        return Response(adapter.encode(records).encode("utf-8", "backslashreplace"),
                        media_type="text/event-stream", headers=adapter.headers)

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


def openai_client(app: Starlette) -> openai.AsyncOpenAI:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return openai.AsyncOpenAI(api_key="none", base_url="http://test/v1", http_client=http,
                              max_retries=0)


@pytest.mark.parametrize("prompt", ["Hello, how are you?", *HOSTILE])
async def test_openai_sdk_streams_and_completes(runtime: Runtime, prompt: str) -> None:
    run_id, records, text = await mock_run(runtime, prompt)
    # The app answers the recorded run whatever the request says (the SDK cannot send a lone
    # surrogate, which the answer holds).
    messages: list[Any] = [{"role": "user", "content": "the prompt"}]
    async with openai_client(openai_app(records, run_id)) as client:
        stream = await client.chat.completions.create(
            model="mock", messages=messages, stream=True,
            stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
        completion = await client.chat.completions.create(model="mock", messages=messages)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert {c.id for c in chunks} == {f"chatcmpl-{run_id}"}
    assert completion.choices[0].message.content == text
    assert completion.usage is not None and completion.usage.total_tokens > 0


async def test_openai_sdk_reads_reasoning_and_tool_calls(runtime: Runtime) -> None:
    run_id, records, text = await shapes_run(runtime)
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    async with openai_client(openai_app(records, run_id)) as client:
        stream = await client.chat.completions.create(model="m", messages=messages, stream=True)
        chunks = [chunk async for chunk in stream]
        completion = await client.chat.completions.create(model="m", messages=messages)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == text
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas).startswith(
        "The user greets me")
    message = completion.choices[0].message
    assert message.content == text and message.tool_calls is not None
    assert [call.function.name for call in message.tool_calls] == ["get_weather", "broken"]
    assert completion.usage is not None and completion.usage.total_tokens == 16


async def test_openai_sdk_raises_for_a_failed_run(runtime: Runtime) -> None:
    run_id, records, _ = await failed_run(runtime)
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    async with openai_client(openai_app(records, run_id)) as client:
        stream = await client.chat.completions.create(model="m", messages=messages, stream=True)
        with pytest.raises(openai.APIError, match="upstream model overloaded"):
            async for _ in stream:
                pass
        with pytest.raises(openai.InternalServerError, match="upstream model overloaded"):
            await client.chat.completions.create(model="m", messages=messages)


def test_the_clients_checks_bite(node_clients: Path, tmp_path: Path) -> None:
    """The readers above do reject broken streams: their verdicts are not vacuous."""
    broken_agui = ('data: {"type": "RUN_STARTED", "threadId": "thread-1", "runId": "agui-run-1"}'
                   '\n\ndata: {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "x"}'
                   '\n\n')
    assert node(node_clients, "agui.mjs", [broken_agui], tmp_path)["error"]
    broken_vercel = ('data: {"type": "start"}\n\ndata: {"type": "text-delta", "id": "t"}\n\n'
                     'data: {"type": "text-delta", "id": "t", "delta": "x"}\n\n')
    result = node(node_clients, "vercel.mjs", [broken_vercel], tmp_path)
    assert len(result["invalid"]) == 1
    assert result["errors"] and "text-start" in result["errors"][0]


def interleaved() -> list[EventRecord]:
    """Two parallel steps writing at once; ``a`` ends while ``b`` is still writing."""
    script: list[tuple[str, str | None, dict[str, Any]]] = [
        ("run.started", None, {}), ("step.started", "a", {"attempt": 1}),
        ("step.started", "b", {"attempt": 1}),
        ("step.event", "a", {"type": "chunk", "text": "A1 "}),
        ("step.event", "b", {"type": "chunk", "text": "B1 "}),
        ("step.event", "a", {"type": "chunk", "text": "A2"}),
        ("step.event", "a", {"type": "done", "full_text": "A1 A2"}),
        ("step.completed", "a", {}),
        ("step.event", "b", {"type": "chunk", "text": "B2"}),
        ("step.event", "b", {"type": "done", "full_text": "B1 B2"}),
        ("step.completed", "b", {}), ("run.completed", None, {})]
    return [(seq, 1.0, type_, step, data) for seq, (type_, step, data)
            in enumerate(script, start=1)]


async def test_parallel_steps_are_read_by_both_clients(node_clients: Path,
                                                       tmp_path: Path) -> None:
    records = interleaved()
    vercel = node(node_clients, "vercel.mjs", [encode("vercel-ai", "r1", records)], tmp_path)
    assert vercel["invalid"] == [] and vercel["errors"] == []
    # finish-step of `a` closed b's open part on the client: b's rest is a part of its own.
    assert vercel["text"] == "A1 A2B1 B2"
    assert vercel["parts"].count("text") == 3
    out = encode("ag-ui", "r1", records, thread_id="thread-1", agui_run_id="agui-run-1")
    agui = node(node_clients, "agui.mjs", [out], tmp_path)
    assert agui["error"] is None
    assert agui["text"] == "A1 A2B1 B2"
    assert agui["events"].count("STEP_FINISHED") == 2


async def test_a_retried_step_reads_cleanly_and_names_the_void_parts(
        runtime: Runtime, node_clients: Path, tmp_path: Path) -> None:
    run_id, records, text = await retried_run(runtime)
    vercel = node(node_clients, "vercel.mjs", [encode("vercel-ai", run_id, records)], tmp_path)
    assert vercel["invalid"] == [] and vercel["errors"] == []
    # The SDK's fold keeps the void part; the data-runstream-retry part names it.
    assert vercel["text"] == "attempt 1 " + text and "data-runstream-retry" in vercel["parts"]
    out = encode("ag-ui", run_id, records, thread_id="thread-1", agui_run_id="agui-run-1")
    agui = node(node_clients, "agui.mjs", [out], tmp_path)
    assert agui["error"] is None and agui["text"] == "attempt 1 " + text
