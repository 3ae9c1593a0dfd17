"""The FastAPI example switched to a real model (RUNSTREAM_EXAMPLE_MODEL=openai), against the
fake server; and still on the mock by default."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from runstream import ComponentConfig, Config

from examples.fastapi_llm.main import create_app
from tests._server import serve

from .conftest import KEY, USAGE, Fake


def events(body: str) -> list[tuple[str | None, dict[str, Any]]]:
    out = []
    for block in body.strip().split("\n\n"):
        name = None
        data = ""
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
        out.append((name, json.loads(data)))
    return out


@pytest.fixture
def openai_env(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNSTREAM_EXAMPLE_MODEL", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_MODEL", "text")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


@pytest.mark.parametrize("path", ["/chat", "/chat/yaml"])
def test_the_example_streams_the_real_model(fake: Fake, openai_env: None, path: str) -> None:
    app = create_app(config=Config(run_log_store=ComponentConfig(type="memory")))
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/").json()["model"] == "openai"
        response = client.post(path, json={"prompt": "Say hello"})
    assert response.status_code == 200
    got = events(response.text)
    assert [d["text"] for n, d in got if d.get("type") == "chunk"] == [
        "Hello", ", ", "world", "!"]
    done = next(d for n, d in got if d.get("type") == "done")
    assert done == {"type": "done", "full_text": "Hello, world!", "finish_reason": "stop",
                    "usage": USAGE}
    assert got[-1][0] == "run.completed"
    assert KEY not in response.text
    sent = fake.app.requests[0]
    assert sent.body["model"] == "text"
    assert sent.body["messages"] == [{"role": "user", "content": "Say hello"}]


def test_the_mock_stays_the_default(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNSTREAM_EXAMPLE_MODEL", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    app = create_app(config=Config(run_log_store=ComponentConfig(type="memory")),
                     delay_scale=0)
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/").json()["model"] == "mock"
        response = client.post("/chat", json={"prompt": "Hi"})
    assert '"full_text": "I received your prompt' in response.text
    assert fake.app.requests == []


def test_an_unknown_model_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNSTREAM_EXAMPLE_MODEL", "gpt")
    with pytest.raises(ValueError, match=r"RUNSTREAM_EXAMPLE_MODEL\) must be one of mock, "):
        create_app(config=Config(run_log_store=ComponentConfig(type="memory")))


def test_a_multi_turn_chat_reaches_the_real_model_whole(fake: Fake, openai_env: None) -> None:
    # The protocol endpoints pass the earlier turns as the `messages` parameter; on the real
    # model they go before the prompt (issue 14: history, not just the last message).
    app = create_app(config=Config(run_log_store=ComponentConfig(type="memory")))
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
             {"role": "user", "content": "And now?"}]
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        response = client.post("/v1/chat/completions",
                               json={"model": "runstream-chat", "messages": turns,
                                     "stream": False})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello, world!"
    assert fake.app.requests[0].body["messages"] == turns
