"""Real servers for the test session: each starts in a temp directory of its own on a free
127.0.0.1 port, and is stopped by its pid. Session-scoped fixtures (see
plugins/postgres/tests/conftest.py) start one per test session and share it.

PostgreSQL refuses to run as root: when the tests run as root (CI, this machine), initdb and the
server run as the ``postgres`` user (Debian's package creates it), in a directory it owns.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: How long a server may take to start before the fixture gives up (a guard, not a wait).
START_TIMEOUT = 60.0


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send the server SIGINT (PostgreSQL's and Redis's
    clean, fast shutdown) when the test process dies, even by SIGKILL: no server outlives its
    test session. Linux only; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the child
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGINT)

    return preexec


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_bin(name: str) -> str:
    """Path of a PostgreSQL program: on PATH, else the newest under /usr/lib/postgresql."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for directory in reversed(versions):
        if (directory / name).exists():
            return str(directory / name)
    raise RuntimeError(f"{name} not found: install PostgreSQL (Debian: apt-get install "
                       "postgresql), as .ci/run does")


class PostgresServer:
    """A PostgreSQL cluster in a temp directory, served on ``127.0.0.1:port``, trust auth.

    :meth:`start` and :meth:`stop` may be called again (same port, same data): a test can take
    the server away mid-run and bring it back.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="runstream-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user: dict[str, Any] = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.log: list[str] = []
        subprocess.run([postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                       check=True, capture_output=True, timeout=120, cwd=self.root,
                       **self.user)

    def dsn(self, dbname: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        """Start the server; returns once it accepts connections."""
        assert self.proc is None, "already running"
        ready = threading.Event()
        self.proc = proc = subprocess.Popen(
            [postgres_bin("postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200", "-c", "logging_collector=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
            cwd=self.root, preexec_fn=_die_with_parent(),
            **self.user)

        def read_log() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:  # drained to the end, so the server never blocks on it
                self.log.append(line.rstrip())
                if "ready to accept connections" in line:
                    ready.set()
            ready.set()  # exited: start() reports it

        self._reader = threading.Thread(target=read_log, daemon=True, name="postgres-log")
        self._reader.start()
        if not ready.wait(START_TIMEOUT) or proc.poll() is not None:
            self.stop()
            raise RuntimeError("PostgreSQL did not start:\n" + "\n".join(self.log[-20:]))

    def stop(self) -> None:
        """Stop the server (a fast shutdown: sessions are ended, the data stays)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)  # the pipe is at its end: the server has exited
        if proc.stderr is not None:
            proc.stderr.close()

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns its DSN."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started :class:`PostgresServer`, stopped and removed on leaving the block."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()
