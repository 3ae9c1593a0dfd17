"""Peer benchmark (issue 16): the same chat over SSE from runstream and the frameworks a user
would pick instead, under the same concurrent load.

Every peer serves the FastAPI example's mock chat (``examples/fastapi_llm/llm_mock.py``: a
``status`` event, another after 0.3 s, one chunk per word 50 ms apart from 0.1 s later, then
``done`` with the full text; the prompt comes in the POST body) from its own small app, written
the way that framework's docs show: ``peer_<name>.py`` in this folder, each in its own venv
(``bash bench/peers/setup.sh``; runstream's own peer uses the workspace venv). See
bench/README.md, "Peer benchmark", for the method and what each peer does.

For each concurrency level (``--streams``, default 200 and 1,000) and each peer, a fresh server
(uvicorn, one worker, ``--loop uvloop --http httptools``, pinned to core 0 with ``taskset``) is
warmed up, then loaded by ``--clients`` raw-socket client processes pinned to core 1
(``_client.py``):

1. steady, ``--duration`` s: every stream runs to its end and is checked (its own prompt's
   answer, word by word, and the protocol's end). Server CPU per stream (``/proc`` utime +
   stime over the phase / streams completed), streams/s, first event p50/p99 (from the
   request sent to the first ``data:`` line), stream duration p50/p99, peak RSS, failures.
2. disconnects, ``--disconnect-duration`` s: ``--disconnect-fraction`` of the streams close
   their socket after 0-15 events. Each server records when the work of those chats ended
   (``GET /stats``, ``_chat.Tracker``); the share whose work stopped within 100 ms of the
   close is "disconnect stops work".

    uv run python bench/peers/run.py                              # the full run (~20 min)
    uv run python bench/peers/run.py --streams 20 --duration 3 --disconnect-duration 3
    uv run python bench/peers/run.py --peers runstream,langgraph --streams 200
    uv run --with matplotlib python bench/peers/run.py --chart-only   # redraw the chart

JSON to bench/results/peers.json, a markdown table on stdout, a chart to
bench/results/peers.png when matplotlib can be imported. Traffic goes to 127.0.0.1 only;
every process started here is stopped (process groups) on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PEERS_DIR = Path(__file__).resolve().parent
BENCH_DIR = PEERS_DIR.parent
REPO = BENCH_DIR.parent
sys.path[:0] = [str(PEERS_DIR), str(BENCH_DIR)]

import _client  # noqa: E402
from _peers import PEERS, Peer, check_mirror, versions  # noqa: E402
from _report import chart, table  # noqa: E402
from soak_sse import (  # noqa: E402
    STREAM_TIMEOUT,
    Server,
    StreamFailure,
    free_port,
    http_get,
    pct,
    pin,
    proc_sample,
)

RESULTS = BENCH_DIR / "results" / "peers.json"
HOST = "127.0.0.1"
#: The work of an abandoned chat must end within this many seconds of the client's close.
STOP_WITHIN = 0.1


class PeerServer(Server):
    """One peer's uvicorn process (its own process group); ``stop()`` as soak_sse.Server."""

    def __init__(self, peer: Peer, workdir: Path, core: int | None) -> None:
        self.kind = peer.name
        self.port = free_port()
        self.log = workdir / f"server-{peer.name}-{self.port}.log"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RUNSTREAM_", "PYTHONPATH", "VIRTUAL_ENV"))}
        if peer.name == "runstream":
            env["PYTHONPATH"] = str(REPO)
            env["PEERS_DB"] = str(workdir / f"runstream-{self.port}.db")
        cmd = [*pin(core), peer.python, "-m", "uvicorn", f"peer_{peer.name}:app",
               "--app-dir", str(PEERS_DIR), "--host", HOST, "--port", str(self.port),
               "--loop", "uvloop", "--http", "httptools", "--no-access-log",
               "--log-level", "warning", "--timeout-graceful-shutdown", "5"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid
        self.shutdown_s: float | None = None


def warm_up(port: int, protocol: str, streams: int = 20, rounds: int = 2) -> None:
    async def go() -> None:
        for r in range(rounds):
            await asyncio.gather(*(_client.one_stream(port, protocol, f"warmup-{r}-{i}", None)
                                   for i in range(streams)))

    asyncio.run(go())


def run_phase(server: PeerServer, peer: Peer, streams: int, duration: float, fraction: float,
              args: argparse.Namespace, workdir: Path, client_core: int | None,
              processes: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    n_clients = max(1, min(args.clients, streams))
    per = [streams // n_clients + (1 if i < streams % n_clients else 0) for i in range(n_clients)]
    phase = "disconnects" if fraction else "steady"
    outs, procs = [], []
    rss0, cpu0, _ = proc_sample(server.pid)
    t0 = time.monotonic()
    for i, tasks in enumerate(per):
        out = workdir / f"client-{peer.name}-{streams}-{phase}-{i}.json"
        outs.append(out)
        cfg = {"port": server.port, "protocol": peer.protocol, "tasks": tasks,
               "duration": duration, "disconnect_fraction": fraction,
               "seed": args.seed * 1000 + i, "client": i, "tag": f"{phase[:2]}{streams}",
               "ramp": 1.5, "out": str(out)}
        proc = subprocess.Popen([*pin(client_core), sys.executable, _client.__file__,
                                 json.dumps(cfg)], start_new_session=True)
        procs.append(proc)
        processes.append(proc)
    rss_peak = rss0
    deadline = t0 + duration + STREAM_TIMEOUT + 30
    next_tick = t0
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{peer.name} server died in phase {phase}: {server.tail()}")
        rss_peak = max(rss_peak, proc_sample(server.pid)[0])
        next_tick += 0.5
        time.sleep(max(0.0, next_tick - time.monotonic()))
    wall = time.monotonic() - t0
    hung = 0
    for p in procs:
        if p.poll() is None:
            hung += 1
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)
    rss1, cpu1, _ = proc_sample(server.pid)
    merged: dict[str, Any] = {"ttfe": [], "durations": [], "abandoned_list": [],
                              "failures": {}, "failure_examples": {}, "completed": 0,
                              "abandoned": 0, "events": 0, "cpu": 0.0}
    for out in outs:
        if not out.exists():
            merged["failures"]["client process lost"] = (
                merged["failures"].get("client process lost", 0) + 1)
            continue
        r = json.loads(out.read_text())
        for key in ("ttfe", "durations", "abandoned_list"):
            merged[key].extend(r[key])
        for key in ("completed", "abandoned", "events", "cpu"):
            merged[key] += r[key]
        for reason, count in r["failures"].items():
            merged["failures"][reason] = merged["failures"].get(reason, 0) + count
            merged["failure_examples"].setdefault(reason, []).extend(
                r["failure_examples"].get(reason, [])[:3])
    if hung:
        merged["failures"]["client hung past the deadline"] = hung
    cpu = cpu1 - cpu0
    done = merged["completed"] + merged["abandoned"]
    return {
        "phase": phase, "concurrency": streams, "duration_s": duration,
        "wall_s": round(wall, 1), "completed": merged["completed"],
        "abandoned": merged["abandoned"], "failed": sum(merged["failures"].values()),
        "failures": merged["failures"], "failure_examples": merged["failure_examples"],
        "events": merged["events"], "streams_per_s": round(merged["completed"] / duration, 1),
        "ttfe_ms": {"p50": round(pct(merged["ttfe"], 0.5) * 1000, 1),
                    "p99": round(pct(merged["ttfe"], 0.99) * 1000, 1)},
        "duration_ms": {"p50": round(pct(merged["durations"], 0.5) * 1000, 1),
                        "p99": round(pct(merged["durations"], 0.99) * 1000, 1)},
        "server_cpu_s": round(cpu, 2), "server_cpu_pct_of_core": round(100 * cpu / wall, 1),
        "server_cpu_ms_per_stream": round(1000 * cpu / done, 3) if done else None,
        "client_cpu_pct_of_core": round(100 * merged["cpu"] / wall, 1),
        "rss_mb": {"start": round(rss0, 1), "end": round(rss1, 1), "peak": round(rss_peak, 1)},
        "_abandoned": merged["abandoned_list"],
    }


def stop_check(port: int, abandoned: list[list[Any]]) -> dict[str, Any]:
    """When the work of each abandoned chat ended, against when its client closed."""
    if not abandoned:
        return {"abandoned": 0}
    wanted = {prompt for prompt, _t, _n in abandoned}
    ended: dict[str, Any] = {}
    time.sleep(1.0)  # a chat closed right after its headers: let its work start, if it will
    for _ in range(20):  # work that runs on to its end needs ~1.5 s more; wait up to ~10 s
        try:
            status, body = asyncio.run(http_get(port, "/stats", 30.0))
        except (OSError, TimeoutError) as exc:
            return {"abandoned": len(abandoned), "error": f"{type(exc).__name__}: {exc}"}
        if status != 200:
            return {"abandoned": len(abandoned), "error": f"GET /stats: http {status}"}
        ended = json.loads(body)["ended"]
        if all(ended.get(p, ("", 0))[0] != "running" for p in wanted):
            break
        time.sleep(0.5)
    within = later = ran_on = running = unstarted = 0
    latencies: list[float] = []
    for prompt, t_close, _events in abandoned:
        record = ended.get(prompt)
        if record is None:  # the work never began: the close stopped it in time
            unstarted += 1
            within += 1
            continue
        outcome, t_end = record
        if outcome == "completed":
            ran_on += 1
            continue
        if outcome == "running":
            running += 1
            continue
        latency = t_end - t_close
        latencies.append(latency)
        if latency <= STOP_WITHIN:
            within += 1
        else:
            later += 1
    n = len(abandoned)
    return {"abandoned": n, "stopped_within_100ms": within, "stopped_later": later,
            "never_started": unstarted, "ran_to_the_end": ran_on,
            "still_running_after_10s": running,
            "fraction_within_100ms": round(within / n, 3),
            "stop_latency_ms": {"p50": round(pct(latencies, 0.5) * 1000, 1),
                                "p99": round(pct(latencies, 0.99) * 1000, 1)}}


def run_peer(peer: Peer, streams: int, args: argparse.Namespace, workdir: Path,
             cores: tuple[int | None, int | None], processes: list[subprocess.Popen[bytes]],
             servers: list[Server]) -> dict[str, Any]:
    server_core, client_core = cores
    server = PeerServer(peer, workdir, server_core)
    servers.append(server)
    server.wait_ready()
    warm_up(server.port, peer.protocol)
    time.sleep(1.0)
    out: dict[str, Any] = {"rss_after_warmup_mb": round(proc_sample(server.pid)[0], 1)}
    print(f"# {peer.name} @ {streams}: steady {args.duration:g} s ...", file=sys.stderr,
          flush=True)
    out["steady"] = run_phase(server, peer, streams, args.duration, 0.0, args, workdir,
                              client_core, processes)
    out["steady"].pop("_abandoned")
    if args.disconnect_fraction > 0:
        time.sleep(1.0)
        print(f"# {peer.name} @ {streams}: disconnects {args.disconnect_duration:g} s ...",
              file=sys.stderr, flush=True)
        result = run_phase(server, peer, streams, args.disconnect_duration,
                           args.disconnect_fraction, args, workdir, client_core, processes)
        result["stop"] = stop_check(server.port, result.pop("_abandoned"))
        out["disconnects"] = result
    server.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="200,1000",
                        help="concurrency levels, comma-separated (default 200,1000)")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds of the steady phase (default 30)")
    parser.add_argument("--disconnect-duration", type=float, default=10.0,
                        help="seconds of the disconnect phase (default 10)")
    parser.add_argument("--disconnect-fraction", type=float, default=0.3,
                        help="share of streams abandoned in the disconnect phase (0: skip it)")
    parser.add_argument("--peers", default=",".join(p.name for p in PEERS),
                        help="comma-separated subset of: " + ", ".join(p.name for p in PEERS))
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--chart-only", action="store_true",
                        help="redraw the table and chart from --out, measure nothing")
    args = parser.parse_args()
    if args.chart_only:
        report = json.loads(args.out.read_text())
        table(report)
        chart(report, args.out.with_suffix(".png"))
        return 0
    levels = [int(s) for s in args.streams.split(",") if s.strip()]
    by_name = {p.name: p for p in PEERS}
    unknown = [n for n in args.peers.split(",") if n not in by_name]
    if unknown or not levels or min(levels) < 1:
        parser.error(f"unknown peers {unknown}" if unknown else "--streams: positive integers")
    if not 0 <= args.disconnect_fraction <= 1:
        parser.error("--disconnect-fraction must be between 0 and 1")
    peers = [by_name[n] for n in args.peers.split(",")]
    missing = [p.name for p in peers if not Path(p.python).exists()]
    if missing:
        print(f"# setting up the venvs of {', '.join(missing)} (bench/peers/setup.sh) ...",
              file=sys.stderr)
        if subprocess.run(["bash", str(PEERS_DIR / "setup.sh"), *missing]).returncode != 0:
            print("# bench/peers/setup.sh failed: see above", file=sys.stderr)
            return 2
    check_mirror()

    from _common import header

    header("peers: the same chat over SSE from runstream and its peers (issue 16)")
    cores = sorted(os.sched_getaffinity(0))
    server_core = client_core = None
    if shutil.which("taskset") and len(cores) >= 2:
        server_core, client_core = cores[0], cores[1]
        os.sched_setaffinity(0, {client_core})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, max(levels) + 1024)), hard))
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "levels": levels, "duration_s": args.duration,
        "disconnect_duration_s": args.disconnect_duration,
        "disconnect_fraction": args.disconnect_fraction, "clients": args.clients,
        "cores": len(cores), "load_avg_start": os.getloadavg()[0],
        "peers": {p.name: {"label": p.label, "protocol": p.protocol, "versions": versions(p)}
                  for p in peers},
        "results": {str(n): {} for n in levels}}
    workdir = Path(tempfile.mkdtemp(prefix="runstream-peers-"))
    processes: list[subprocess.Popen[bytes]] = []
    servers: list[Server] = []
    try:
        for n in levels:
            for peer in peers:
                report["results"][str(n)][peer.name] = run_peer(
                    peer, n, args, workdir, (server_core, client_core), processes, servers)
    except KeyboardInterrupt:
        print("# interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, StreamFailure) as exc:
        print(f"# aborted: {exc}", file=sys.stderr)
        return 1
    finally:
        for proc in processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report["load_avg_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    table(report)
    chart(report, args.out.with_suffix(".png"))
    print(f"# details: {args.out}")
    failed = sum(r[ph]["failed"] for lv in report["results"].values() for r in lv.values()
                 for ph in ("steady", "disconnects") if ph in r)
    print(f"# verdict: {'PASS' if failed == 0 else 'FAIL'} ({failed} failed streams)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
