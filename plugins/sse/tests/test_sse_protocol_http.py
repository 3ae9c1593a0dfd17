"""``sse_response(protocol=...)`` over real uvicorn, read by each protocol's own client (issue
14): Node ``ai`` (live stream, and a cut stream resumed with ``Last-Event-ID`` on the replay
route), Node ``@ag-ui/client``'s ``HttpAgent``, Python ``openai``'s ``AsyncOpenAI`` (stream,
``stream: false``, usage, failures); hostile text through each.

The echo pipeline answers the prompt itself (mock-llm, ``{prompt}``), so what a client folds
must equal the prompt exactly.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from runstream import AsyncPipeline, Config, MemoryEventLog, Runtime
from runstream.testing import memory_config
from runstream_mock_llm import MockLLMTask
from runstream_sse import SSE, parse_chat_request, runs_router

from tests._server import serve

from ._protocol_runs import FAST, HOSTILE
from .test_sse_protocol_clients import node_clients

__all__ = ["node_clients"]

TIMEOUT = 60
#: The hostile prompts the openai SDK can send: it writes its request as UTF-8, which cannot
#: hold a lone surrogate (the SDK raises UnicodeEncodeError before sending anything).
SENDABLE = [prompt for prompt in HOSTILE if "\ud800" not in prompt]
ROUTES = {"vercel-ai": "/vercel", "ag-ui": "/agui", "openai": "/v1/chat/completions"}

VERCEL_LIVE = """
import {parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema} from "ai";
const [url, body] = process.argv.slice(2);
const response = await fetch(url, {method: "POST", body,
                                   headers: {"Content-Type": "application/json"}});
const invalid = [], errors = [], parsed = [];
for await (const result of parseJsonEventStream({stream: response.body,
                                                 schema: uiMessageChunkSchema})) {
  if (result.success) parsed.push(result.value);
  else invalid.push(String(result.error));
}
const stream = new ReadableStream({start(controller) {
  for (const chunk of parsed) controller.enqueue(chunk);
  controller.close();
}});
let message;
for await (const snapshot of readUIMessageStream({stream,
    onError: (e) => errors.push(String(e.message ?? e))})) message = snapshot;
const text = (message?.parts ?? []).filter((p) => p.type === "text").map((p) => p.text).join("");
process.stdout.write(JSON.stringify({invalid, errors, chunks: parsed.map((c) => c.type), text,
  header: response.headers.get("x-vercel-ai-ui-message-stream")}));
"""

AGUI_LIVE = """
import {HttpAgent} from "@ag-ui/client";
const [url, failAfter] = process.argv.slice(2);
const agent = new HttpAgent({url, threadId: "thread-live"});
const prompt = JSON.parse(process.argv[4]);
agent.messages = [{id: "u1", role: "user", content: prompt}];
const events = [];
let error = null;
try {
  await agent.runAgent({runId: "agui-live-1",
                        forwardedProps: failAfter === "-" ? {} : {fail: true}},
                       {onEvent: ({event}) => { events.push(event.type); }});
} catch (e) {
  error = String(e.message ?? e);
}
const text = agent.messages.filter((m) => m.role === "assistant")
  .map((m) => typeof m.content === "string" ? m.content : "").join("");
process.stdout.write(JSON.stringify({events, error, text}));
"""


def pipelines() -> tuple[AsyncPipeline, AsyncPipeline, AsyncPipeline]:
    echo = MockLLMTask(name="llm", response_template="{prompt}", returns=["full_text"], **FAST)
    failing = MockLLMTask(name="llm", response_template="{prompt}", fail_after=2,
                          fail_error="RuntimeError: model overloaded", **FAST)
    # One word a minute: a run that is still going whenever the test acts on it.
    endless = MockLLMTask(name="llm", response_template="{prompt}", thinking_delay=0,
                          generating_delay=0, tokens_per_second=1 / 60)
    return (AsyncPipeline("echo", [echo]), AsyncPipeline("echo-failing", [failing]),
            AsyncPipeline("endless", [endless]))


def make_app() -> FastAPI:
    sse = SSE(memory_config())
    app = FastAPI(lifespan=sse.lifespan)
    app.include_router(sse.router())
    echo, failing, endless = pipelines()

    def route(protocol: str) -> Any:
        async def chat(request: Request) -> Response:
            raw = await request.body()
            req = parse_chat_request(protocol, raw)
            body = json.loads(raw)
            fail = body.get("fail") or (body.get("forwardedProps") or {}).get("fail")
            pipeline = endless if body.get("endless") else failing if fail else echo
            parameters = {"prompt": req.prompt, "messages": req.messages}
            run_id = body.get("run_id")
            if not req.stream:
                return sse.completion(pipeline, parameters, options=req.options, run_id=run_id)
            return sse.response(pipeline, parameters, protocol=protocol, options=req.options,
                                on_disconnect="continue", run_id=run_id)
        return chat

    for protocol, path in ROUTES.items():
        app.add_api_route(path, route(protocol), methods=["POST"])
    return app


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(make_app()) as url:
        yield url


def run_node(clients: Path, name: str, script: str, *args: str) -> dict[str, Any]:
    (clients / name).write_text(script)
    done = subprocess.run(["node", str(clients / name), *args], capture_output=True,
                          timeout=TIMEOUT, check=False, cwd=clients)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def vercel_body(prompt: str, **extra: Any) -> str:
    return json.dumps({"id": "chat-1", "messages": [
        {"id": "u0", "role": "user", "parts": [{"type": "text", "text": "earlier"}]},
        {"id": "a0", "role": "assistant", "parts": [{"type": "text", "text": "ok"}]},
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": prompt}]}],
        "trigger": "submit-message", **extra})


@pytest.mark.parametrize("prompt", ["Hello, how are you?", *HOSTILE])
def test_ai_sdk_folds_the_live_stream(base_url: str, node_clients: Path, prompt: str) -> None:
    result = run_node(node_clients, "vercel_live.mjs", VERCEL_LIVE, base_url + "/vercel",
                      vercel_body(prompt))
    assert result["invalid"] == [] and result["errors"] == []
    assert result["text"] == prompt
    assert result["header"] == "v1"
    assert result["chunks"][0] == "start" and result["chunks"][-1] == "finish"


def test_ai_sdk_gets_the_error_of_a_failing_run(base_url: str, node_clients: Path) -> None:
    result = run_node(node_clients, "vercel_live.mjs", VERCEL_LIVE, base_url + "/vercel",
                      vercel_body("one two three four", fail=True))
    assert result["invalid"] == []
    assert "error" in result["chunks"]
    assert any("model overloaded" in e for e in result["errors"])


def frames_until(response: httpx.Response, count: int) -> tuple[str, int]:
    """The text of the first ``count`` frames with an id, and the last id read."""
    text, frames, last = "", 0, 0
    for line in response.iter_lines():
        text += line + "\n"
        if line.startswith("id: "):
            last = int(line[4:])
        if line == "":
            frames += line == "" and last > 0
            if frames >= count:
                return text, last
    raise AssertionError(f"the stream ended after {frames} frames")


@pytest.mark.parametrize("prompt", ["Hello, how are you? " * 5, HOSTILE[0], HOSTILE[-1]])
def test_ai_sdk_folds_a_cut_stream_resumed_on_the_replay_route(
        base_url: str, node_clients: Path, tmp_path: Path, prompt: str) -> None:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        with client.stream("POST", "/vercel", content=vercel_body(prompt)) as response:
            run_id = response.headers["x-run-id"]
            first, last = frames_until(response, 5)
        rest = client.get(f"/runs/{run_id}/events", params={"protocol": "vercel-ai"},
                          headers={"Last-Event-ID": str(last)})
        assert rest.status_code == 200
        assert rest.headers["x-vercel-ai-ui-message-stream"] == "v1"
    files = []
    for i, text in enumerate((first, rest.text)):
        path = tmp_path / f"part-{i}.txt"
        path.write_bytes(text.encode("utf-8", "backslashreplace"))
        files.append(str(path))
    done = subprocess.run(["node", str(node_clients / "vercel.mjs"), *files],
                          capture_output=True, timeout=TIMEOUT, check=False, cwd=node_clients)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    result = json.loads(done.stdout)
    assert result["invalid"] == [] and result["errors"] == []
    assert result["text"] == prompt


@pytest.mark.parametrize("prompt", ["Hello, how are you?", *HOSTILE])
def test_agui_http_agent_reads_the_run(base_url: str, node_clients: Path, prompt: str) -> None:
    result = run_node(node_clients, "agui_live.mjs", AGUI_LIVE, base_url + "/agui", "-",
                      json.dumps(prompt))
    assert result["error"] is None
    assert result["text"] == prompt
    assert result["events"][0] == "RUN_STARTED" and result["events"][-1] == "RUN_FINISHED"


def test_agui_http_agent_gets_run_error(base_url: str, node_clients: Path) -> None:
    result = run_node(node_clients, "agui_live.mjs", AGUI_LIVE, base_url + "/agui", "fail",
                      json.dumps("one two three four"))
    assert "RUN_ERROR" in result["events"]
    assert "RUN_FINISHED" not in result["events"]


def client(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0,
                              timeout=TIMEOUT)


@pytest.mark.parametrize("prompt", ["Hello, how are you?", *SENDABLE])
async def test_openai_sdk_streams_and_completes(base_url: str, prompt: str) -> None:
    async with client(base_url) as sdk:
        messages: Any = [{"role": "user", "content": prompt}]
        stream = await sdk.chat.completions.create(
            model="echo-model", messages=messages, stream=True,
            stream_options={"include_usage": True})
        text, usage, models = "", None, set()
        async for chunk in stream:
            models.add(chunk.model)
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage is not None:
                usage = chunk.usage
        assert text == prompt
        assert models == {"echo-model"}
        assert usage is not None and usage.completion_tokens > 0
        completion = await sdk.chat.completions.create(model="echo-model", messages=messages)
        assert completion.choices[0].message.content == prompt
        assert completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None and completion.usage.total_tokens > 0


async def test_openai_sdk_raises_api_error_for_a_failing_run(base_url: str) -> None:
    async with client(base_url) as sdk:
        messages: Any = [{"role": "user", "content": "one two three four"}]
        with pytest.raises(openai.APIError, match="model overloaded"):
            await sdk.chat.completions.create(model="m", messages=messages,
                                              extra_body={"fail": True})
        stream = await sdk.chat.completions.create(model="m", messages=messages, stream=True,
                                                   extra_body={"fail": True})
        with pytest.raises(openai.APIError, match="model overloaded"):
            async for _ in stream:
                pass


def test_a_resume_frames_with_the_options_kept_with_the_run(base_url: str) -> None:
    # The model and include_usage of the request are in the event log with the run: the
    # replay route (any process) frames the rest as the first stream did.
    body = {"model": "kept-model", "messages": [{"role": "user", "content": "a b c d e f"}],
            "stream": True, "stream_options": {"include_usage": True}}
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            run_id = response.headers["x-run-id"]
            _, last = frames_until(response, 3)
        rest = http.get(f"/runs/{run_id}/events", params={"protocol": "openai"},
                        headers={"Last-Event-ID": str(last)})
        chunks = [json.loads(line[6:]) for line in rest.text.splitlines()
                  if line.startswith("data: {")]
        assert chunks and {c["model"] for c in chunks} == {"kept-model"}
        assert chunks[-1]["usage"]["completion_tokens"] > 0
        assert rest.text.rstrip().endswith("data: [DONE]")
        bad = http.get(f"/runs/{run_id}/events", params={"protocol": "grpc"})
        assert bad.status_code == 400 and "vercel-ai" in bad.json()["detail"]


def run_end(http: httpx.Client, run_id: str) -> str:
    """The run's terminal event type, read off its replay (which waits for it)."""
    replay = http.get(f"/runs/{run_id}/events")
    return [line[7:] for line in replay.text.splitlines() if line.startswith("event: ")][-1]


def test_a_completion_whose_client_leaves_is_cancelled(base_url: str) -> None:
    # stream: false is the same run: the client that goes away cancels it (on_disconnect).
    body = {"model": "m", "messages": [{"role": "user", "content": "a b c"}],
            "endless": True, "run_id": "completion-left-1"}
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post("/v1/chat/completions", json=body, timeout=httpx.Timeout(TIMEOUT, read=1))
        assert run_end(http, "completion-left-1") == "run.cancelled"


def test_a_protocol_stream_resumes_on_its_own_endpoint(
        base_url: str, node_clients: Path, tmp_path: Path) -> None:
    # The same POST with the run's id and Last-Event-ID follows the run, in its protocol.
    prompt = "resume me where I was cut, word after word, " * 3
    body = vercel_body(prompt, run_id="vercel-resume-1")
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as http:
        with http.stream("POST", "/vercel", content=body) as response:
            first, last = frames_until(response, 4)
        rest = http.post("/vercel", content=body, headers={"Last-Event-ID": str(last)})
        assert rest.status_code == 200
        again = http.post("/vercel", content=body, headers={"Last-Event-ID": "100000"})
        assert again.status_code == 204  # ended, nothing after that id
    paths = []
    for i, text in enumerate((first, rest.text)):
        path = tmp_path / f"part-{i}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    done = subprocess.run(["node", str(node_clients / "vercel.mjs"), *paths],
                          capture_output=True, timeout=TIMEOUT, check=False, cwd=node_clients)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    result = json.loads(done.stdout)
    assert result["invalid"] == [] and result["errors"] == []
    assert result["text"] == prompt


class SharedLog(MemoryEventLog):
    """A memory log that says it is shared: two runtimes on it stand for two processes."""

    shared: ClassVar[bool] = True


async def test_another_process_resumes_in_the_protocol_with_the_kept_options(
        memory_config: Config) -> None:
    a, b = Runtime(memory_config), Runtime(memory_config)
    shared = a.event_log = b.event_log = SharedLog()
    sse = SSE(a)
    app = FastAPI(lifespan=sse.lifespan)
    app.include_router(runs_router(b, prefix="/b/runs"))
    echo = pipelines()[0]

    @app.post("/chat")
    async def chat() -> Response:
        return sse.response(echo, {"prompt": "one two three four"}, protocol="openai",
                            options={"model": "kept-model", "include_usage": True})

    try:
        with serve(app) as base:
            async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as http:
                first = await http.post("/chat")
                run_id = first.headers["x-run-id"]
                info = await shared.get_run(run_id)
                assert info is not None and info.meta == {
                    "protocol": "openai",
                    "options": {"model": "kept-model", "include_usage": True}}
                # B has only the shared log: the options come from there.
                rest = await http.get(f"/b/runs/{run_id}/events", params={"protocol": "openai"},
                                      headers={"Last-Event-ID": "2"})
    finally:
        await a.aclose()
        await b.aclose()
    chunks = [json.loads(line[6:]) for line in rest.text.splitlines()
              if line.startswith("data: {")]
    assert {c["model"] for c in chunks} == {"kept-model"}
    assert "usage" in chunks[-1]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert first.text.endswith(rest.text)
    assert "four" in text
