"""Several uvicorn processes of the example app on free ports of 127.0.0.1, sharing one config
(a shared event log and run log store): for the tests of what spans processes. Each process is
started in its own session and stopped with its whole process group (``--workers N`` forks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """One uvicorn process (with its workers, if any) of the example."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process and its workers (its process group)."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
        self.kill(signal.SIGKILL)  # workers left behind, if any
        self.proc.wait(timeout=10)


def start_example(cwd: Path, config: Path, *, workers: int = 1, delay_scale: float = 1.0,
                  env: dict[str, str] | None = None, timeout: float = 30.0) -> Server:
    """``uvicorn examples.fastapi_llm.main:app`` with ``RUNSTREAM_CONFIGURATION_FILE=config``,
    ready (``GET /`` answers) when this returns."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    environ.update({"PYTHONPATH": str(ROOT), "RUNSTREAM_CONFIGURATION_FILE": str(config),
                    "RUNSTREAM_EXAMPLE_DELAY_SCALE": str(delay_scale), **(env or {})})
    log = cwd / f"server-{port}.log"
    cmd = [sys.executable, "-m", "uvicorn", "examples.fastapi_llm.main:app",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=environ, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(proc, port, log)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(f"{server.url}/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"the example exited: {log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the example did not start: {log.read_text()}")
            time.sleep(0.05)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def example_cluster(cwd: Path, config: Path, count: int, **options: object
                    ) -> Iterator[list[Server]]:
    """``count`` example processes sharing ``config``; all stopped on leaving."""
    # Started side by side: each spends seconds importing the app.
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(start_example, cwd, config, **options)  # type: ignore[arg-type]
                   for _ in range(count)]
    try:
        yield [future.result() for future in futures]
    finally:
        for future in futures:
            if future.exception() is None:
                future.result().stop()
