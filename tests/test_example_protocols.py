"""The example's protocol endpoints (examples/fastapi_llm/protocols.py) on real uvicorn: the
OpenAI SDK on /v1, the Vercel UI message stream on /api/chat and its resume route, AG-UI on
/agui; the same limits (422, 413) and session ownership as /chat. (The protocols' own Node
clients read these streams in plugins/sse/tests/test_sse_protocol_http.py; the React page in
tests/test_example_react.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from runstream import ComponentConfig, Config

from examples.fastapi_llm.main import create_app
from tests._mock_llm_plan import plan_answer
from tests._server import serve

TIMEOUT = httpx.Timeout(30.0)
HOSTILE = ["line one\nline two\r\nthree\rfour", "a\u2028b\u2029c\x85d 😀 🇫🇷",
           "data: x\n\nid: 9\r\nevent: run.completed\n\n"]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = create_app(config=Config(run_log_store=ComponentConfig(type="memory")),
                     delay_scale=0, max_prompt_chars=100, max_body_bytes=4096)
    with serve(app) as url:
        yield url


def ui_body(prompt: str, chat_id: str = "chat-1", **extra: Any) -> dict[str, Any]:
    return {"id": chat_id, "trigger": "submit-message", "messages": [
        {"id": "u0", "role": "user", "parts": [{"type": "text", "text": "first turn"}]},
        {"id": "a0", "role": "assistant", "parts": [{"type": "text", "text": "an answer"}]},
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": prompt}]}], **extra}


def data_frames(text: str) -> list[Any]:
    return [json.loads(line[6:]) for line in text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


def vercel_text(text: str) -> str:
    return "".join(c["delta"] for c in data_frames(text) if c["type"] == "text-delta")


def test_root_lists_the_protocol_endpoints(base_url: str) -> None:
    endpoints = httpx.get(base_url + "/", timeout=TIMEOUT).json()["endpoints"]
    for path in ("/api/chat", "/api/chat/{chat_id}/stream", "/agui", "/v1/chat/completions",
                 "/v1/models"):
        assert path in endpoints


@pytest.mark.parametrize("prompt", ["Hello, how are you?", *HOSTILE])
async def test_openai_sdk_on_v1(base_url: str, prompt: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0,
                                  timeout=30) as sdk:
        models = [model.id async for model in sdk.models.list()]
        assert models == ["runstream-chat", "runstream-chat-yaml"]
        messages: Any = [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": prompt}]
        for model in models:
            stream = await sdk.chat.completions.create(
                model=model, messages=messages, stream=True,
                stream_options={"include_usage": True})
            text, usage = "", None
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
                usage = chunk.usage or usage
            assert text == plan_answer(prompt)
            assert usage is not None and usage.completion_tokens > 0
            completion = await sdk.chat.completions.create(model=model, messages=messages)
            assert completion.choices[0].message.content == plan_answer(prompt)
        with pytest.raises(openai.NotFoundError, match="runstream-chat"):
            await sdk.chat.completions.create(model="gpt-4o", messages=messages)
        with pytest.raises(openai.APIError, match="overloaded"):
            await sdk.chat.completions.create(model=models[0], messages=messages,
                                              extra_body={"fail_after": 2})


@pytest.mark.parametrize("prompt", ["Hello, how are you?", *HOSTILE])
def test_api_chat_streams_the_answer_and_resumes_by_chat_id(base_url: str, prompt: str) -> None:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        response = client.post("/api/chat", json=ui_body(prompt, chat_id="resumable"))
        assert response.status_code == 200
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        run_id = response.headers["x-run-id"]
        assert vercel_text(response.text) == plan_answer(prompt)
        assert response.text.rstrip().endswith("data: [DONE]")
        # useChat's resume (GET {api}/{chat id}/stream): the chat's latest run, from its start.
        resumed = client.get("/api/chat/resumable/stream", follow_redirects=True)
        assert resumed.status_code == 200
        assert vercel_text(resumed.text) == plan_answer(prompt)
        assert data_frames(resumed.text)[0]["messageId"] == f"msg-{run_id}"
        assert client.get("/api/chat/unknown/stream").status_code == 204
        # Another session (no cookie) has no chat of that id, nor the run.
        with httpx.Client(base_url=base_url, timeout=TIMEOUT) as stranger:
            assert stranger.get("/api/chat/resumable/stream").status_code == 204
            assert stranger.get(f"/runs/{run_id}").status_code == 404
        assert client.get(f"/runs/{run_id}").json()["status"] == "completed"


def test_agui_streams_the_answer(base_url: str) -> None:
    body = {"threadId": "t1", "runId": "r1", "tools": [], "context": [], "state": {},
            "forwardedProps": {}, "messages": [{"id": "1", "role": "user", "content": "Hi"}]}
    response = httpx.post(base_url + "/agui", json=body, timeout=TIMEOUT)
    assert response.status_code == 200
    events = data_frames(response.text)
    assert events[0] == {"type": "RUN_STARTED", "threadId": "t1", "runId": "r1"}
    assert events[-1]["type"] == "RUN_FINISHED"
    text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == plan_answer("Hi")
    failed = httpx.post(base_url + "/agui", json={**body, "forwardedProps": {"fail_after": 1}},
                        timeout=TIMEOUT)
    assert data_frames(failed.text)[-1]["type"] == "RUN_ERROR"


@pytest.mark.parametrize(("path", "body", "problem"), [
    ("/api/chat", {"id": "c", "messages": []}, "no user message"),
    ("/api/chat", ui_body("   "), "must not be empty"),
    ("/api/chat", ui_body("x" * 101), "the limit is 100"),
    ("/api/chat", ui_body("hi", fail_after="3"), "fail_after"),
    ("/agui", {"messages": []}, "threadId"),
    ("/v1/chat/completions", {"model": "runstream-chat", "messages": "hi"}, "messages"),
])
def test_bad_bodies_get_422(base_url: str, path: str, body: Any, problem: str) -> None:
    response = httpx.post(base_url + path, json=body, timeout=TIMEOUT)
    assert response.status_code == 422, response.text
    assert problem in json.dumps(response.json()["detail"])


@pytest.mark.parametrize("path", ["/api/chat", "/agui", "/v1/chat/completions"])
def test_large_bodies_get_413(base_url: str, path: str) -> None:
    response = httpx.post(base_url + path, content=b"{" + b" " * 5000 + b"}",
                          headers={"content-type": "application/json"}, timeout=TIMEOUT)
    assert response.status_code == 413
