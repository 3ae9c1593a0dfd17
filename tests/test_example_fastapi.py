"""The FastAPI LLM streaming example (examples/fastapi_llm) over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx_sse import aconnect_sse
from runstream import ComponentConfig, Config

from examples.fastapi_llm.main import DEFAULT_MAX_PROMPT_CHARS, create_app
from tests._mock_llm_plan import plan_answer, plan_events
from tests._server import serve

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = httpx.Timeout(30.0)
PROMPT = "Hello, how are you?"


def memory_app(**options: Any) -> FastAPI:
    return create_app(config=Config(run_log_store=ComponentConfig(type="memory")), **options)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(memory_app(max_prompt_chars=100)) as url:
        yield url


class SSEEvent:
    """One event as a client reads it off the wire (WHATWG field rules, enough for our server)."""

    def __init__(self, lines: list[str], arrived: float) -> None:
        self.lines = lines
        self.arrived = arrived
        self.event = "message"
        self.id: str | None = None
        data: list[str] = []
        for line in lines:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                self.event = value
            elif field == "id":
                self.id = value
            elif field == "data":
                data.append(value)
        self.data = "\n".join(data)

    def json(self) -> Any:
        return json.loads(self.data)


def read_events(response: httpx.Response) -> Iterator[SSEEvent]:
    """Events of a streaming response, each stamped with when its last line arrived."""
    lines: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if lines and not all(x.startswith(":") for x in lines):
                yield SSEEvent(lines, time.monotonic())
            lines = []
        else:
            lines.append(line)


def run_status(client: httpx.Client, run_id: str) -> str:
    response = client.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def wait_for_status(client: httpx.Client, run_id: str, wanted: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    status = run_status(client, run_id)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.02)
        status = run_status(client, run_id)
    assert status == wanted


def test_root_lists_the_endpoints(base_url: str) -> None:
    body = httpx.get(base_url + "/", timeout=TIMEOUT).json()
    assert body["status"] == "ok"
    assert set(body["endpoints"]) == {"/chat", "/chat/yaml", "/ui", "/runs/{run_id}",
                                      "/runs/{run_id}/events", "/runs/{run_id}/cancel",
                                      "/api/chat", "/api/chat/{chat_id}/stream", "/agui",
                                      "/v1/chat/completions", "/v1/models", "/app"}
    assert body["max_prompt_chars"] == 100


@pytest.mark.parametrize("path", ["/chat", "/chat/yaml"])
def test_curl_transcript_streams_as_generated(base_url: str, path: str) -> None:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client, \
            client.stream("POST", path, json={"prompt": PROMPT}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        run_id = response.headers["x-run-id"]
        events: list[SSEEvent] = []
        status_at_first_chunk = None
        for event in read_events(response):
            events.append(event)
            if status_at_first_chunk is None and event.event == "message" \
                    and event.json()["type"] == "chunk":
                # Streamed, not buffered: the run is still generating the rest of the answer.
                status_at_first_chunk = run_status(client, run_id)
        assert status_at_first_chunk == "running"
        session = dict(client.cookies)  # the run belongs to this session (examples' sessions.py)

    data_events = [e for e in events if e.event == "message"]
    assert [e.json() for e in data_events] == plan_events(PROMPT)
    # Each data event is exactly one `data:` line of the dict as JSON, plus its `id:`.
    ids = [int(e.id) for e in data_events if e.id is not None]
    assert len(ids) == len(data_events) and ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(sum(x.startswith("data:") for x in e.lines) == 1 for e in data_events)
    assert [e.event for e in events[len(data_events):]] == ["run.completed"]
    assert events[-1].id is not None and int(events[-1].id) > ids[-1]
    arrivals = [e.arrived for e in events]
    assert arrivals == sorted(arrivals)
    with httpx.Client(base_url=base_url, timeout=TIMEOUT, cookies=session) as client:
        assert run_status(client, run_id) == "completed"


def test_run_log_and_replay(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        with client.stream("POST", "/chat", json={"prompt": "replay me"}) as response:
            run_id = response.headers["x-run-id"]
            live = list(read_events(response))
        run = client.get(f"/runs/{run_id}").json()
        assert run["status"] == "completed"
        assert run["parameters"]["prompt"] == "replay me"

        with client.stream("GET", f"/runs/{run_id}/events") as response:
            assert response.status_code == 200
            replayed = list(read_events(response))
        assert [(e.id, e.event, e.data) for e in replayed] == [
            (e.id, e.event, e.data) for e in live]

        middle = live[5]
        with client.stream("GET", f"/runs/{run_id}/events",
                           headers={"Last-Event-ID": str(middle.id)}) as response:
            resumed = list(read_events(response))
        assert [e.data for e in resumed] == [e.data for e in live[6:]]

        assert client.get("/runs/no-such-run").status_code == 404


def test_failing_run_ends_with_run_failed(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        with client.stream("POST", "/chat", json={"prompt": PROMPT, "fail_after": 3}) as response:
            assert response.status_code == 200
            run_id = response.headers["x-run-id"]
            events = list(read_events(response))
        data = [e.json() for e in events if e.event == "message"]
        assert [d["type"] for d in data] == ["status", "status", "chunk", "chunk", "chunk"]
        assert events[-1].event == "run.failed"
        failure = events[-1].json()
        assert failure["error_type"] == "RuntimeError"
        assert failure["message"] == "upstream model overloaded"
        assert failure["step"] == "llm_response"
        assert run_status(client, run_id) == "failed"


def test_client_disconnect_cancels_the_run(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        with client.stream("POST", "/chat", json={"prompt": PROMPT}) as response:
            run_id = response.headers["x-run-id"]
            for event in read_events(response):
                if event.event == "message" and event.json()["type"] == "chunk":
                    break
        wait_for_status(client, run_id, "cancelled")


async def test_100_concurrent_chats_each_get_their_own_answer(base_url: str) -> None:
    prompts = [f"Question {i}: what is {i} squared?" for i in range(100)]
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)

    async def chat(client: httpx.AsyncClient, prompt: str) -> list[dict[str, Any]]:
        async with aconnect_sse(client, "POST", "/chat", json={"prompt": prompt}) as source:
            return [json.loads(sse.data) async for sse in source.aiter_sse()
                    if sse.event == "message"]

    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT, limits=limits) as client:
        results = await asyncio.wait_for(
            asyncio.gather(*(chat(client, p) for p in prompts)), timeout=60)
    for prompt, events in zip(prompts, results, strict=True):
        assert events[-1] == {"type": "done", "full_text": plan_answer(prompt)}
        assert f"'{prompt}'" in events[-1]["full_text"]
        assert events == plan_events(prompt)


@pytest.mark.parametrize(("content", "problem"), [
    (b'{"text": "hi"}', "missing"),
    (b'{"prompt": 123}', "string_type"),
    (b'{"prompt": ["a"]}', "string_type"),
    (b'{"prompt": null}', "string_type"),
    (b'{"prompt": ""}', "string_too_short"),
    (b'{"prompt": "   \\n"}', "string_too_short"),
    (b'{"prompt": "' + b"x" * 101 + b'"}', "string_too_long"),
    (b'{"prompt": "hi", "fail_after": -1}', "greater_than_equal"),
    (b'{"prompt": "hi"', "json_invalid"),
    (b"not json at all", "json_invalid"),
    (b'["prompt"]', "model_attributes_type"),
])
@pytest.mark.parametrize("path", ["/chat", "/chat/yaml"])
def test_bad_bodies_get_422(base_url: str, path: str, content: bytes, problem: str) -> None:
    response = httpx.post(base_url + path, content=content, timeout=TIMEOUT,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert [d["type"] for d in detail] == [problem]


def test_limit_messages_are_clear(base_url: str) -> None:
    response = httpx.post(base_url + "/chat", json={"prompt": "x" * 101}, timeout=TIMEOUT)
    assert response.json()["detail"][0]["msg"] == (
        "prompt has 101 characters; the limit is 100")
    assert response.json()["detail"][0]["loc"] == ["body", "prompt"]
    response = httpx.post(base_url + "/chat", json={"prompt": ""}, timeout=TIMEOUT)
    assert response.json()["detail"][0]["msg"] == "prompt must not be empty"


def test_prompt_at_the_limit_is_accepted(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client, \
            client.stream("POST", "/chat", json={"prompt": "y" * 100}) as response:
        assert response.status_code == 200
        events = list(read_events(response))
    assert events[-2].json() == {"type": "done", "full_text": plan_answer("y" * 100)}


def test_ui_page_is_self_contained(base_url: str) -> None:
    response = httpx.get(base_url + "/ui", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for element in ('id="prompt"', 'id="send"', 'id="stop"', 'id="status"', 'id="answer"',
                    'id="error"', 'id="run-id"', 'id="fail"'):
        assert element in page
    assert "http://" not in page and "https://" not in page  # no CDN, nothing external
    assert "<script src" not in page and "<link" not in page


def test_default_limit_and_factory_validation() -> None:
    assert DEFAULT_MAX_PROMPT_CHARS == 8000
    with pytest.raises(ValueError, match="max_prompt_chars must be at least 1"):
        memory_app(max_prompt_chars=0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_uvicorn_command_and_plan_curl(tmp_path: Path) -> None:
    """`uvicorn examples.fastapi_llm.main:app` in a fresh directory, then the plan's curl."""
    curl = shutil.which("curl")
    assert curl is not None, "curl is needed for this test"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env["PYTHONPATH"] = str(ROOT)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.fastapi_llm.main:app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the example server did not start"
            time.sleep(0.1)
        jar, headers = tmp_path / "cookies", tmp_path / "headers"
        result = subprocess.run(
            [curl, "-N", "-sS", "-c", str(jar), "-b", str(jar), "-D", str(headers),
             "-X", "POST", f"http://127.0.0.1:{port}/chat",
             "-H", "Content-Type: application/json", "-d", json.dumps({"prompt": PROMPT})],
            capture_output=True, text=True, timeout=30, check=True)
        # The README's next step: the run's log, with the session cookie curl kept...
        run_id = next(line.split(":", 1)[1].strip() for line in headers.read_text().splitlines()
                      if line.lower().startswith("x-run-id:"))
        run_url = f"http://127.0.0.1:{port}/runs/{run_id}"
        mine = subprocess.run([curl, "-sS", "-b", str(jar), run_url], capture_output=True,
                              text=True, timeout=30, check=True)
        # ...and without it (another client), as if the run did not exist.
        theirs = subprocess.run([curl, "-sS", "-w", "\n%{http_code}", run_url],
                                capture_output=True, text=True, timeout=30, check=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    data = [json.loads(line.removeprefix("data: ")) for line in result.stdout.splitlines()
            if line.startswith("data: ")]
    assert data[:-1] == plan_events(PROMPT)
    assert "\nevent: run.completed\n" in result.stdout
    assert sum(line.startswith("id: ") for line in result.stdout.splitlines()) == len(data)
    assert json.loads(mine.stdout)["status"] == "completed"
    assert theirs.stdout.splitlines()[-1] == "404"
    # A fresh checkout keeps run logs in the default sqlite store under the working directory.
    assert (tmp_path / ".runstream" / "runstream.db").is_file()
