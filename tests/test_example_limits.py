"""The example app's request body limit: 413 with a clear message, without reading the body
(Content-Length) or past the limit (chunked); and a 422, not a 500, for NaN and infinities."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from runstream import ComponentConfig, Config

from examples.fastapi_llm.main import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_PROMPT_CHARS, create_app
from tests._server import serve

LIMIT = DEFAULT_MAX_BODY_BYTES
MESSAGE = f"request body too large: the limit is {LIMIT} bytes (create_app(max_body_bytes=...))"


def memory_app(**options: Any) -> FastAPI:
    return create_app(config=Config(run_log_store=ComponentConfig(type="memory")),
                      delay_scale=0, **options)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(memory_app()) as url:
        yield url


def _connect(base_url: str) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def test_the_default_limit_is_64_kib_above_any_valid_prompt() -> None:
    assert DEFAULT_MAX_BODY_BYTES == 64 * 1024
    # The longest prompt, even with every character escaped by JSON (\\uXXXX), fits.
    assert len(json.dumps({"prompt": "\u2028" * DEFAULT_MAX_PROMPT_CHARS})) < LIMIT
    with pytest.raises(ValueError, match="max_body_bytes must be at least 1"):
        memory_app(max_body_bytes=0)


def test_a_content_length_over_the_limit_is_413_before_any_body_is_sent(base_url: str) -> None:
    with _connect(base_url) as sock:
        # Headers only: the 10 MB body never comes. A server that waited for it would hang.
        sock.sendall(b"POST /chat HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 10000000\r\n\r\n")
        begun = time.monotonic()
        status, headers, body = _read_response(sock)
        assert time.monotonic() - begun < 5
    assert status == 413
    assert headers["connection"] == "close"
    assert json.loads(body) == {"detail": MESSAGE}


def test_httpx_gets_the_413_with_its_message(base_url: str) -> None:
    response = httpx.post(base_url + "/chat", json={"prompt": "x" * (LIMIT + 1)}, timeout=10)
    assert response.status_code == 413
    assert response.json() == {"detail": MESSAGE}


def test_a_chunked_body_is_cut_at_the_limit(base_url: str) -> None:
    chunk = b"x" * 8192
    sent = 0
    with _connect(base_url) as sock:
        sock.sendall(b"POST /chat HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        # Up to 16 MB, unless the server answers first: it must, soon after the limit.
        while sent < 16 * 1024 * 1024:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:  # the server answered and closed: the rest is not wanted
                break
            sent += len(chunk)
            time.sleep(0.002)
        status, headers, body = _read_response(sock)
    assert status == 413
    assert json.loads(body) == {"detail": MESSAGE}
    assert headers["connection"] == "close"
    assert sent < 1024 * 1024, sent  # read up to the limit, not the 16 MB that was coming


def test_bodies_within_the_limit_still_stream(base_url: str) -> None:
    prompt = "é" * DEFAULT_MAX_PROMPT_CHARS
    with httpx.Client(base_url=base_url, timeout=10) as client, \
            client.stream("POST", "/chat", json={"prompt": prompt}) as response:
        assert response.status_code == 200
        text = response.read().decode()
    assert "event: run.completed" in text
    chunked = httpx.post(base_url + "/chat", timeout=10,
                         headers={"Content-Type": "application/json"},
                         content=iter([b'{"prompt": ', b'"hello"}']))
    assert chunked.status_code == 200
    assert "event: run.completed" in chunked.text
    # Over max_prompt_chars but under the body limit: the prompt check (422) answers.
    too_long = httpx.post(base_url + "/chat", json={"prompt": "y" * 9000}, timeout=10)
    assert too_long.status_code == 422


@pytest.mark.parametrize(("body", "field", "shown"), [
    ('{"prompt": "x", "fail_after": NaN}', "fail_after", "NaN"),
    ('{"prompt": NaN}', "prompt", "NaN"),
    ('{"prompt": "x", "fail_after": 1e400}', "fail_after", "Infinity"),
    ('{"prompt": "x", "fail_after": -Infinity}', "fail_after", "-Infinity"),
    ('{"prompt": [Infinity, {"a": NaN}]}', "prompt", ["Infinity", {"a": "NaN"}]),
])
@pytest.mark.parametrize("path", ["/chat", "/chat/yaml"])
def test_nan_and_infinity_in_the_body_are_a_422(base_url: str, path: str, body: str,
                                                field: str, shown: Any) -> None:
    """Python's JSON parser reads NaN, Infinity and 1e400 (as inf); FastAPI's own 422 handler
    cannot send them back (a 500): the example's answers the 422, naming them as text."""
    response = httpx.post(base_url + path, content=body, timeout=10,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert error["input"] == shown
    assert error["msg"]
