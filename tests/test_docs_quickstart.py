"""docs/quickstart.md works as written: its files run as they are, in a fresh folder, and its
transcript is what the server really sends."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

QUICKSTART = Path(__file__).resolve().parents[1] / "docs" / "quickstart.md"
TIMEOUT = 60


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", QUICKSTART.read_text(), re.S)


def python_file(name: str) -> str:
    """The Python block whose first line is the comment ``# <name>``."""
    (source,) = [b for b in blocks("python") if b.startswith(f"# {name}")]
    return source


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "first.py").write_text(python_file("first.py"))
    (tmp_path / "app.py").write_text(python_file("app.py"))
    return tmp_path


@pytest.fixture
def env() -> dict[str, str]:
    """The environment without runstream's own variables (a new user's shell)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}


def test_first_pipeline_runs_in_python_and_from_the_cli(folder: Path, env: dict[str, str]
                                                        ) -> None:
    done = subprocess.run([sys.executable, "first.py"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "{'type': 'status', 'status': 'thinking'}"
    assert lines[-1] == "completed {'loud': 'YOU ASKED: AGAIN'}"  # as the page says
    cli = Path(sys.executable).with_name("runstream")
    run = subprocess.run([str(cli), "run", "first:pipeline", "--param", "prompt=hello"],
                         cwd=folder, env=env, capture_output=True, text=True,
                         timeout=TIMEOUT, check=False)
    assert run.returncode == 0, run.stderr
    assert "hello" in run.stdout


@pytest.fixture
def app_url(folder: Path, env: dict[str, str]) -> Iterator[str]:
    """``uv run uvicorn app:app`` in the folder, on a socket bound here (a free port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--fd", str(sock.fileno()),
             "--log-level", "warning"],
            cwd=folder, env=env, pass_fds=(sock.fileno(),), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        try:
            # Connections wait in the socket's backlog until the app is up: no polling.
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.terminate()
            _, errors = server.communicate(timeout=TIMEOUT)
    assert b"Traceback" not in errors, errors.decode()


def test_the_fastapi_app_sends_the_transcript(app_url: str) -> None:
    section = QUICKSTART.read_text().split("## 3.")[1].split("## 4.")[0]
    (transcript,) = re.findall(r"```text\n(.*?)```", section, re.S)
    response = httpx.post(app_url + "/chat", json={"prompt": "Hello"}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["x-run-id"]

    def timeless(text: str) -> str:
        return re.sub(r'"duration_ms": [0-9.]+', '"duration_ms": T', text)

    assert timeless(response.text) == timeless(transcript)
    run = httpx.get(f"{app_url}/runs/{response.headers['x-run-id']}", timeout=TIMEOUT)
    assert run.json()["status"] == "completed"
