"""The front ends' protocols over HTTP: ``sse_response(protocol=...)`` against runstream's own.

One uvicorn server process (as ``bench_sse.py``: one worker, uvloop + httptools, 127.0.0.1,
pinned to core 0 when there are two) serves ``/p/{protocol}?n=N&pace_ms=P``: a one-step
pipeline whose async generator yields ``N`` text deltas ``{"type": "chunk", "text": "tok "}``,
streamed with ``sse_response(..., protocol=protocol)`` for ``runstream``, ``vercel-ai``,
``ag-ui`` and ``openai``. The client (this process, core 1) reads each stream to its end
over a raw socket and checks that it carries the ``N`` deltas.

- throughput: one stream of ``--events`` (100,000) deltas, events/s and server CPU per event;
- many streams: ``--streams`` (200) concurrent streams of ``--paced-events`` (25) deltas,
  ``--pace-ms`` (5 ms) apart, server CPU per stream;

each protocol against ``runstream`` in the same run (target: events/s >= 0.8x, CPU <= 1.25x).

``--peer`` adds pydantic-ai's adapters (``VercelAIAdapter``, ``AGUIAdapter``) for the same
deltas, driven without a model: a second server, in the pydantic-ai venv of
``bench/peers/setup.sh pydantic_ai``, streams ``N`` ``PartDeltaEvent`` text deltas through
each adapter's event stream and ``encode_stream`` (``bench/peers/protocols_pydantic_ai.py``).

    uv run python bench/bench_protocols.py [--events 100000] [--reps 5] [--streams 200]
                                           [--paced-events 25] [--pace-ms 5] [--rounds 5]
                                           [--peer]

Every process started here is stopped on exit (its process group), on Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _common import header, median, ratio, row, spread  # noqa: E402
from bench_sse import Server, read_many, read_stream, server_cpu  # noqa: E402

PROTOCOLS = ("runstream", "vercel-ai", "ag-ui", "openai")
PEER_PYTHON = BENCH_DIR / "peers" / ".venvs" / "pydantic_ai" / "bin" / "python"
PEER_PROTOCOLS = ("vercel-ai", "ag-ui")
TOKEN = b"tok "


async def deltas(n: int, pace_ms: float = 0.0) -> AsyncGenerator[dict[str, Any], None]:
    """The task: ``n`` text deltas, ``pace_ms`` apart (0: as fast as possible)."""
    if pace_ms:
        delay = pace_ms / 1000
        for _ in range(n):
            yield {"type": "chunk", "text": "tok "}
            await asyncio.sleep(delay)
    else:
        for _ in range(n):
            yield {"type": "chunk", "text": "tok "}


def app() -> Any:
    """The server (``--factory``): one route per protocol, memory run log store."""
    import contextlib
    from collections.abc import AsyncIterator

    from runstream import AsyncPipeline, ComponentConfig, Config, Runtime
    from runstream_async_python import AsyncPythonTask
    from runstream_sse import sse_response
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    pipeline = AsyncPipeline("bench-protocols", [AsyncPythonTask(name="llm", function=deltas)])

    async def stream(request: Request) -> Response:
        q = request.query_params
        return sse_response(pipeline, {"n": int(q.get("n", "1000")),
                                       "pace_ms": float(q.get("pace_ms", "0"))},
                            config=runtime, protocol=request.path_params["protocol"])

    async def root(_request: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await runtime.aclose()

    return Starlette(routes=[Route("/", root), Route("/p/{protocol}", stream)],
                     lifespan=lifespan)


def check(kind: str, raw: bytes, n: int) -> None:
    """The stream answered 200 and carried the ``n`` deltas."""
    if not raw.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"{kind}: bad response: {raw[:300]!r}")
    got = raw.count(TOKEN)
    if got != n:
        raise SystemExit(f"{kind}: got {got} deltas, expected {n}: {raw[-300:]!r}")


class ProtocolServer(Server):
    """``bench_sse.Server`` on this module's app (or the pydantic-ai peer's)."""

    def __init__(self, workdir: Path, core: int | None, *, peer: bool = False) -> None:
        import subprocess

        from _common import child_env
        from bench_sse import HOST, free_port

        self.port = free_port()
        self.log = workdir / ("peer.log" if peer else "server.log")
        python = str(PEER_PYTHON) if peer else sys.executable
        target = "protocols_pydantic_ai:app" if peer else "bench_protocols:app"
        app_dir = BENCH_DIR / "peers" if peer else BENCH_DIR
        pin = ["taskset", "-c", str(core)] if core is not None else []
        cmd = [*pin, python, "-m", "uvicorn", target, "--app-dir", str(app_dir),
               "--host", HOST, "--port", str(self.port), "--loop", "uvloop", "--http",
               "httptools", "--no-access-log", "--log-level", "warning",
               "--timeout-graceful-shutdown", "5"]
        if not peer:
            cmd.insert(cmd.index(target) + 1, "--factory")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=workdir, env=child_env(), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid


def throughput(server: Server, kinds: tuple[str, ...], n: int, reps: int
               ) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {k: {"rate": [], "cpu_us": []} for k in kinds}
    warm = min(n, 20_000)
    for kind in kinds:
        check(kind, read_stream(server.port, f"/p/{kind}?n={warm}")[1], warm)
    for _ in range(reps):
        for kind in kinds:  # interleaved: a noisy neighbour hurts all alike
            c0 = server_cpu(server.pid)
            elapsed, raw = read_stream(server.port, f"/p/{kind}?n={n}")
            used = server_cpu(server.pid) - c0
            check(kind, raw, n)
            out[kind]["rate"].append(n / elapsed)
            out[kind]["cpu_us"].append(used / n * 1e6)
    return out


def many(server: Server, kinds: tuple[str, ...], streams: int, events: int, pace_ms: float,
         rounds: int) -> dict[str, list[float]]:
    import time

    out: dict[str, list[float]] = {k: [] for k in kinds}
    for kind in kinds:
        for raw in asyncio.run(read_many(server.port, f"/p/{kind}?n={events}&pace_ms={pace_ms}",
                                         min(streams, 20))):
            check(kind, raw, events)
    for _ in range(rounds):
        for kind in kinds:
            time.sleep(0.3)  # let the previous round's connections close
            c0 = server_cpu(server.pid)
            raws = asyncio.run(read_many(server.port, f"/p/{kind}?n={events}&pace_ms={pace_ms}",
                                         streams))
            time.sleep(0.1)  # the server's clean-up after the last stream counts too
            used = server_cpu(server.pid) - c0
            for raw in raws:
                check(kind, raw, events)
            out[kind].append(used / streams * 1e3)
    return out


def report(label: str, fast: dict[str, dict[str, list[float]]],
           paced: dict[str, list[float]], base: str, kinds: tuple[str, ...],
           args: argparse.Namespace) -> None:
    rate = {k: median(fast[k]["rate"]) for k in kinds}
    cpu = {k: median(fast[k]["cpu_us"]) for k in kinds}
    per = {k: median(paced[k]) for k in kinds}
    print(f"## {label}: one stream of {args.events:,} deltas (medians of {args.reps}); "
          f"{args.streams} x {args.paced_events} deltas {args.pace_ms:g} ms apart "
          f"(medians of {args.rounds})")
    for kind in kinds:
        row(f"{kind} events/s", f"{rate[kind]:,.0f}",
            f"(range {spread(fast[kind]['rate'])}; {ratio(rate[kind], rate[base])} of {base})")
        row(f"{kind} server CPU us/event", f"{cpu[kind]:.2f}",
            f"({ratio(cpu[kind], cpu[base])} of {base})")
        row(f"{kind} server CPU ms/stream (paced)", f"{per[kind]:.3f}",
            f"(range {spread(paced[kind])}; {ratio(per[kind], per[base])} of {base})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--paced-events", type=int, default=25)
    parser.add_argument("--pace-ms", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--peer", action="store_true",
                        help="also pydantic-ai's adapters (bench/peers/setup.sh pydantic_ai)")
    args = parser.parse_args()
    if args.peer and not PEER_PYTHON.exists():
        print(f"--peer needs {PEER_PYTHON}: run `bash bench/peers/setup.sh pydantic_ai`",
              file=sys.stderr)
        return 2

    header("bench_protocols: sse_response(protocol=...) against runstream's own protocol")
    cores = sorted(os.sched_getaffinity(0))
    server_core = client_core = None
    if shutil.which("taskset") and len(cores) >= 2:
        server_core, client_core = cores[0], cores[1]
        os.sched_setaffinity(0, {client_core})
    workdir = Path(tempfile.mkdtemp(prefix="runstream-bench-protocols-"))
    results = []
    try:
        servers = [("runstream-sse", ProtocolServer(workdir, server_core), PROTOCOLS)]
        if args.peer:
            servers.append(("pydantic-ai adapters",
                            ProtocolServer(workdir, server_core, peer=True), PEER_PROTOCOLS))
        for label, server, kinds in servers:
            try:
                server.wait_ready()
                fast = throughput(server, kinds, args.events, args.reps)
                paced = many(server, kinds, args.streams, args.paced_events, args.pace_ms,
                             args.rounds)
            finally:
                server.stop()
            results.append((label, fast, paced, kinds))
    except KeyboardInterrupt:
        print("# interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ours = results[0]
    report("runstream-sse", ours[1], ours[2], "runstream", PROTOCOLS, args)
    if len(results) > 1:
        _, fast, paced, kinds = results[1]
        # The peer against runstream-sse's adapter of the same protocol.
        merged_fast = {**{f"pydantic-ai {k}": fast[k] for k in kinds},
                       **{k: ours[1][k] for k in kinds}}
        merged_paced = {**{f"pydantic-ai {k}": paced[k] for k in kinds},
                        **{k: ours[2][k] for k in kinds}}
        for kind in kinds:
            report(f"pydantic-ai {kind} against runstream-sse {kind}", merged_fast,
                   merged_paced, kind, (kind, f"pydantic-ai {kind}"), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
