"""SSE throughput: ``sse_response()`` against a plain Starlette ``StreamingResponse``.

One uvicorn server process (one worker, ``--loop uvloop --http httptools``, 127.0.0.1, pinned
to core 0 with ``taskset`` when there are two cores) serves both apps side by side:

- ``/sse?n=N``: :func:`runstream_sse.sse_response` of a one-step pipeline whose async
  generator yields ``N`` small dicts as fast as it can (``memory`` run log store by default);
- ``/plain?n=N``: a Starlette ``StreamingResponse`` of the same ``N`` events, pre-serialised
  ``data: {...}\\n\\n`` lines (the floor: no framing, no JSON, no run).

The client (this process, pinned to core 1) reads each stream to its end over a raw socket.
Figures: events/s (wall clock) and the server's CPU per event (``/proc/PID/stat`` utime +
stime before/after), medians over interleaved repetitions, and their ratio to the plain app.

"Many streams": ``--streams`` (200) concurrent streams of ``--paced-events`` (25) events, one
every ``--pace-ms`` (5 ms), like a token stream; server CPU per stream for both apps.

``--event-log redis`` adds ``/sse-redis``: the same ``sse_response`` on a second runtime whose
event log is ``redis`` (runstream-redis), on a ``redis-server`` this script starts (no
persistence, free port, pinned to the client's core) and stops. Both event logs are then
measured in the same run, interleaved, with their ratios; the Redis server's CPU is counted
beside the web server's.

    uv run python bench/bench_sse.py [--events 100000] [--reps 5] [--streams 200]
                                     [--paced-events 25] [--pace-ms 5] [--rounds 5]
                                     [--store memory|sqlite] [--event-log memory|redis]

Every process started here is stopped on exit (its process group), on Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(BENCH_DIR.parent))  # tests/_redis_server.py

from _common import child_env, header, median, ratio, row, spread  # noqa: E402

HOST = "127.0.0.1"

# --------------------------------------------------------------------------------------------
# The server (imported by uvicorn in the server process: ``--app-dir bench bench_sse:app``)
# --------------------------------------------------------------------------------------------


async def tokens(n: int, pace_ms: float = 0.0) -> AsyncGenerator[dict[str, Any], None]:
    """The task: ``n`` small dicts, ``pace_ms`` apart (0: as fast as possible)."""
    if pace_ms:
        delay = pace_ms / 1000
        for i in range(n):
            yield {"type": "chunk", "i": i}
            await asyncio.sleep(delay)
    else:
        for i in range(n):
            yield {"type": "chunk", "i": i}


def app() -> Any:
    """Both apps in one Starlette app (the run log store is named by BENCH_SSE_STORE)."""
    import json

    from runstream import AsyncPipeline, ComponentConfig, Config, Runtime
    from runstream_async_python import AsyncPythonTask
    from runstream_sse import sse_response
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route

    if os.environ.get("BENCH_SSE_STORE", "memory") == "sqlite":
        store = ComponentConfig(type="sqlite", path=os.environ["BENCH_SSE_DB"])
    else:
        store = ComponentConfig(type="memory")
    runtime = Runtime(Config(run_log_store=store))
    redis_url = os.environ.get("BENCH_SSE_REDIS_URL")
    # The same app on the redis event log (--event-log redis), beside the memory one.
    redis_runtime = Runtime(Config(run_log_store=store, event_log=ComponentConfig(
        type="redis", url=redis_url))) if redis_url else None
    pipeline = AsyncPipeline("bench-sse", [AsyncPythonTask(name="tokens", function=tokens)])

    serialised: dict[int, list[bytes]] = {}

    def params(request: Request) -> tuple[int, float]:
        q = request.query_params
        return int(q.get("n", "1000")), float(q.get("pace_ms", "0"))

    async def sse(request: Request) -> Response:
        n, pace = params(request)
        return sse_response(pipeline, {"n": n, "pace_ms": pace}, config=runtime)

    async def sse_redis(request: Request) -> Response:
        n, pace = params(request)
        return sse_response(pipeline, {"n": n, "pace_ms": pace}, config=redis_runtime)

    async def plain(request: Request) -> Response:
        n, pace = params(request)

        frames = serialised.get(n)
        if frames is None:  # serialised once per n: the floor does no per-event work
            frames = serialised[n] = [
                f"data: {json.dumps({'type': 'chunk', 'i': i})}\n\n".encode() for i in range(n)]

        async def lines() -> AsyncGenerator[bytes, None]:
            if pace:
                delay = pace / 1000
                for frame in frames:
                    yield frame
                    await asyncio.sleep(delay)
            else:
                for frame in frames:
                    yield frame

        return StreamingResponse(lines(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def root(_request: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if redis_runtime is not None:
            await redis_runtime.start()  # connects to Redis now, not at the first stream
        yield
        await runtime.aclose()
        if redis_runtime is not None:
            await redis_runtime.aclose()

    return Starlette(routes=[Route("/", root), Route("/sse", sse), Route("/plain", plain),
                             Route("/sse-redis", sse_redis)],
                     lifespan=lifespan)


# --------------------------------------------------------------------------------------------
# The conductor and the clients
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_bytes(port: int, path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n"
            "Connection: close\r\n\r\n").encode()


def check(kind: str, raw: bytes, n: int) -> None:
    """The stream answered 200 and carried the ``n`` task events (SSE: plus its end)."""
    if not raw.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"{kind}: bad response: {raw[:300]!r}")
    got = raw.count(b"data: {\"type\": \"chunk\"")
    if got != n:
        raise SystemExit(f"{kind}: got {got} events, expected {n}: {raw[-300:]!r}")
    if kind != "plain" and b"event: run.completed" not in raw[-200:]:
        raise SystemExit(f"{kind}: no run.completed at the end: {raw[-300:]!r}")


def read_stream(port: int, path: str) -> tuple[float, bytes]:
    """One stream over a blocking raw socket, read to EOF: (seconds, raw response)."""
    parts: list[bytes] = []
    with socket.create_connection((HOST, port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        t0 = time.perf_counter()
        s.sendall(request_bytes(port, path))
        recv = s.recv
        while chunk := recv(1 << 20):
            parts.append(chunk)
        elapsed = time.perf_counter() - t0
    return elapsed, b"".join(parts)


async def read_many(port: int, path: str, streams: int) -> list[bytes]:
    async def one() -> bytes:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(request_bytes(port, path))
            return await reader.read()
        finally:
            writer.close()

    return await asyncio.gather(*(one() for _ in range(streams)))


class Server:
    def __init__(self, workdir: Path, core: int | None, store: str,
                 redis_url: str | None = None) -> None:
        self.port = free_port()
        env = child_env()
        env["BENCH_SSE_STORE"] = store
        if redis_url:
            env["BENCH_SSE_REDIS_URL"] = redis_url
        env["BENCH_SSE_DB"] = str(workdir / "runs.db")
        self.log = workdir / "server.log"
        pin = ["taskset", "-c", str(core)] if core is not None else []
        cmd = [*pin, sys.executable, "-m", "uvicorn", "bench_sse:app", "--factory",
               "--app-dir", str(BENCH_DIR), "--host", HOST, "--port", str(self.port),
               "--loop", "uvloop", "--http", "httptools", "--no-access-log",
               "--log-level", "warning", "--timeout-graceful-shutdown", "5"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {self.log.read_text(errors='replace')}")
            with contextlib.suppress(OSError):
                _, raw = read_stream(self.port, "/")
                if raw.startswith(b"HTTP/1.1 200"):
                    return
            time.sleep(0.2)
        raise SystemExit(f"server not ready after {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


KINDS = ("plain", "sse")
#: The kinds with ``--event-log redis``.
REDIS_KINDS = (*KINDS, "sse-redis")


def cpu_of(pids: list[int]) -> float:
    return sum(server_cpu(pid) for pid in pids)


def throughput(server: Server, n: int, reps: int, kinds: tuple[str, ...], redis_pid: int | None
               ) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {
        k: {"rate": [], "cpu_us": [], "redis_us": []} for k in kinds}
    for kind in kinds:  # warm-up
        check(kind, read_stream(server.port, f"/{kind}?n={min(n, 20_000)}")[1], min(n, 20_000))
    for _ in range(reps):
        for kind in kinds:  # interleaved: a noisy neighbour hurts all alike
            c0 = server_cpu(server.pid)
            r0 = server_cpu(redis_pid) if redis_pid else 0.0
            elapsed, raw = read_stream(server.port, f"/{kind}?n={n}")
            used = server_cpu(server.pid) - c0
            redis_used = (server_cpu(redis_pid) - r0) if redis_pid else 0.0
            check(kind, raw, n)
            out[kind]["rate"].append(n / elapsed)
            out[kind]["cpu_us"].append(used / n * 1e6)
            out[kind]["redis_us"].append(redis_used / n * 1e6)
    return out


def many(server: Server, streams: int, events: int, pace_ms: float, rounds: int,
         kinds: tuple[str, ...], redis_pid: int | None) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {
        k: {"cpu_ms": [], "wall": [], "redis_ms": []} for k in kinds}
    for kind in kinds:  # warm-up
        for raw in asyncio.run(read_many(server.port, f"/{kind}?n={events}&pace_ms={pace_ms}",
                                         20)):
            check(kind, raw, events)
    for _ in range(rounds):
        for kind in kinds:
            time.sleep(0.3)  # let the previous round's connections close
            c0 = server_cpu(server.pid)
            r0 = server_cpu(redis_pid) if redis_pid else 0.0
            t0 = time.perf_counter()
            raws = asyncio.run(read_many(server.port, f"/{kind}?n={events}&pace_ms={pace_ms}",
                                         streams))
            wall = time.perf_counter() - t0
            time.sleep(0.1)  # the server's clean-up after the last stream counts too
            used = server_cpu(server.pid) - c0
            redis_used = (server_cpu(redis_pid) - r0) if redis_pid else 0.0
            for raw in raws:
                check(kind, raw, events)
            out[kind]["cpu_ms"].append(used / streams * 1e3)
            out[kind]["redis_ms"].append(redis_used / streams * 1e3)
            out[kind]["wall"].append(wall)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000,
                        help="events per stream in the throughput runs")
    parser.add_argument("--reps", type=int, default=5, help="throughput repetitions per app")
    parser.add_argument("--streams", type=int, default=200, help="concurrent paced streams")
    parser.add_argument("--paced-events", type=int, default=25)
    parser.add_argument("--pace-ms", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5, help="many-streams rounds per app")
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--event-log", choices=("memory", "redis"), default="memory",
                        help="redis: also measure sse_response on the redis event log (its "
                             "own redis-server), against the memory one, in the same run")
    args = parser.parse_args()
    kinds = REDIS_KINDS if args.event_log == "redis" else KINDS

    header("bench_sse: sse_response() against a plain StreamingResponse, one uvicorn worker")
    cores = sorted(os.sched_getaffinity(0))
    server_core = client_core = None
    if shutil.which("taskset") and len(cores) >= 2:
        server_core, client_core = cores[0], cores[1]
        os.sched_setaffinity(0, {client_core})
    print(f"# server: uvicorn, uvloop + httptools, core {server_core}; client: raw sockets, "
          f"core {client_core}; run log store {args.store}")
    workdir = Path(tempfile.mkdtemp(prefix="runstream-bench-sse-"))
    redis = None
    if args.event_log == "redis":
        from tests._redis_server import RedisServer

        redis = RedisServer(workdir / "redis")
        redis.start()
        assert redis.process is not None
        if client_core is not None:
            os.sched_setaffinity(redis.process.pid, {client_core})
        print(f"# redis-server {redis.url} (pid {redis.process.pid}, no persistence, "
              f"core {client_core})")
    redis_pid = redis.process.pid if redis is not None and redis.process else None
    server = None
    try:
        server = Server(workdir, server_core, args.store, redis.url if redis else None)
        server.wait_ready()
        fast = throughput(server, args.events, args.reps, kinds, redis_pid)
        paced = many(server, args.streams, args.paced_events, args.pace_ms, args.rounds, kinds,
                     redis_pid)
    except KeyboardInterrupt:
        print("# interrupted", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()
        if redis is not None:
            redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"## throughput: one stream of {args.events:,} events, medians of {args.reps} "
          "interleaved runs")
    rate = {k: median(fast[k]["rate"]) for k in KINDS}
    cpu = {k: median(fast[k]["cpu_us"]) for k in KINDS}
    row("plain StreamingResponse (baseline) events/s", f"{rate['plain']:,.0f}",
        f"(range {spread(fast['plain']['rate'])})")
    row("sse_response events/s", f"{rate['sse']:,.0f}", f"(range {spread(fast['sse']['rate'])})")
    row("  ratio sse / plain", ratio(rate["sse"], rate["plain"]))
    row("plain server CPU us/event", f"{cpu['plain']:.2f}",
        f"(range {spread(fast['plain']['cpu_us'])})")
    row("sse server CPU us/event", f"{cpu['sse']:.2f}", f"(range {spread(fast['sse']['cpu_us'])})")
    row("  ratio sse / plain", ratio(cpu["sse"], cpu["plain"]),
        f"(overhead {cpu['sse'] - cpu['plain']:.2f} us/event)")
    print(f"## many streams: {args.streams} concurrent x {args.paced_events} events, "
          f"{args.pace_ms:g} ms apart; medians of {args.rounds} rounds")
    per = {k: median(paced[k]["cpu_ms"]) for k in KINDS}
    for kind, label in (("plain", "plain StreamingResponse (baseline)"),
                        ("sse", "sse_response")):
        row(f"{label} server CPU ms/stream", f"{per[kind]:.3f}",
            f"(range {spread(paced[kind]['cpu_ms'])}; "
            f"round wall {median(paced[kind]['wall']):.2f} s)")
    row("  ratio sse / plain", ratio(per["sse"], per["plain"]),
        f"(overhead {per['sse'] - per['plain']:.3f} ms/stream, "
        f"{(per['sse'] - per['plain']) * 1e3 / args.paced_events:.1f} us/event)")
    if "sse-redis" in kinds:
        redis_report(fast, paced)
    return 0


def redis_report(fast: dict[str, dict[str, list[float]]],
                 paced: dict[str, dict[str, list[float]]]) -> None:
    """The redis event log against the memory one (targets: issue 12)."""
    mem, red = fast["sse"], fast["sse-redis"]
    print("## event log: redis vs memory (sse_response, same server, interleaved)")
    row("one stream, redis events/s", f"{median(red['rate']):,.0f}",
        f"(range {spread(red['rate'])})")
    row("  ratio redis / memory events/s", ratio(median(red["rate"]), median(mem["rate"])),
        "(target >= 0.5x)")
    row("one stream, redis web server CPU us/event", f"{median(red['cpu_us']):.2f}",
        f"(+ redis-server {median(red['redis_us']):.2f})")
    row("  ratio redis / memory CPU per event (web server)",
        ratio(median(red["cpu_us"]), median(mem["cpu_us"])))
    both = [a + b for a, b in zip(red["cpu_us"], red["redis_us"], strict=True)]
    row("  ratio redis / memory CPU per event (+ redis-server)",
        ratio(median(both), median(mem["cpu_us"])))
    mem_p, red_p = paced["sse"], paced["sse-redis"]
    row("token streams, redis web server CPU ms/stream", f"{median(red_p['cpu_ms']):.3f}",
        f"(+ redis-server {median(red_p['redis_ms']):.3f}; "
        f"round wall {median(red_p['wall']):.2f} s)")
    row("  ratio redis / memory CPU per stream (web server)",
        ratio(median(red_p["cpu_ms"]), median(mem_p["cpu_ms"])), "(target <= 1.5x)")
    both_p = [a + b for a, b in zip(red_p["cpu_ms"], red_p["redis_ms"], strict=True)]
    row("  ratio redis / memory CPU per stream (+ redis-server)",
        ratio(median(both_p), median(mem_p["cpu_ms"])))


if __name__ == "__main__":
    sys.exit(main())
