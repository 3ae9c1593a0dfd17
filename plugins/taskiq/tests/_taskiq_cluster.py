"""Workers of the ``taskiq`` executor as real ``runstream worker`` subprocesses, and configs that
web processes and workers share (Redis: queue, event log; PostgreSQL: run log store)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
RUNSTREAM = str(Path(sys.executable).with_name("runstream"))

_ids = itertools.count()


@dataclass
class Shared:
    """One test's share of the session's servers: its own queue, key prefixes and schema."""

    redis_url: str
    dsn: str
    tag: str
    lease: float = 1.5

    @property
    def broker(self) -> str:
        return self.redis_url.rsplit("/", 1)[0] + "/1"

    def config(self, directory: Path, *, max_queued: int = 1000, extra: str = "") -> Path:
        path = directory / f"runstream-{self.tag}.yaml"
        path.write_text(f"""\
executor:
  type: taskiq
  broker: "{self.broker}"
  queue_name: "q-{self.tag}"
  key_prefix: "tq-{self.tag}:"
  lease: {self.lease}
  max_queued: {max_queued}
event_log:
  type: redis
  url: "{self.redis_url}"
  key_prefix: "ev-{self.tag}:"
  slot_lease: {self.lease}
run_log_store:
  type: postgres
  dsn: "{self.dsn}"
  schema_name: "s_{self.tag}"
limits:
  cancel_grace_period: 2
{extra}""", encoding="utf-8")
        return path

    def holder_pid(self, run_id: str) -> int | None:
        """The pid of the worker that has taken ``run_id``'s message (its ``taken`` list)."""
        client = redis.Redis.from_url(self.broker)
        try:
            for key in client.scan_iter(f"tq-{self.tag}:taken:*"):
                if any(run_id.encode() in m for m in client.lrange(key, 0, -1)):  # type: ignore[union-attr]
                    return int(key.decode().split(":")[-2])
            return None
        finally:
            client.close()

    def live_workers(self) -> int:
        client = redis.Redis.from_url(self.broker)
        try:
            now = float(client.time()[0]) * 1000  # type: ignore[index]
            return int(client.zcount(f"tq-{self.tag}:workers", now, "+inf"))  # type: ignore[arg-type]
        finally:
            client.close()


def new_tag() -> str:
    return f"{os.getpid()}x{next(_ids)}"


def child_env(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
    environ.update(extra)
    return environ


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
        return self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # polling what another process writes, with a deadline


def start_worker(shared: Shared, config: Path, cwd: Path, *, concurrency: int = 50,
                 grace_period: float = 5.0, delay_scale: float = 0.0,
                 hold: Path | None = None) -> Worker:
    """``runstream worker`` on ``config``; returns once its heartbeat is in Redis. ``hold``:
    the worker writes ``{run_id}.taken`` there for each message it takes, and then waits
    forever instead of starting the run."""
    extra = {"RUNSTREAM_TASKIQ_TEST_HOLD": str(hold)} if hold is not None else {}
    before = shared.live_workers()
    log = cwd / f"worker-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [RUNSTREAM, "worker", "--config", str(config), "--concurrency", str(concurrency),
             "--grace-period", str(grace_period)],
            cwd=cwd, env=child_env(RUNSTREAM_EXAMPLE_DELAY_SCALE=str(delay_scale), **extra),
            stdout=out, stderr=subprocess.STDOUT)
    worker = Worker(proc, log)
    deadline = time.monotonic() + 30
    while shared.live_workers() <= before:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited: {worker.output()}")
        if time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"the worker did not start: {worker.output()}")
        time.sleep(0.05)  # polling the heartbeat it writes, with a deadline
    return worker


@contextmanager
def workers(shared: Shared, config: Path, cwd: Path, count: int, **options: object
            ) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for _ in range(count):
            started.append(start_worker(shared, config, cwd, **options))  # type: ignore[arg-type]
        yield started
    finally:
        for worker in started:
            worker.stop()
