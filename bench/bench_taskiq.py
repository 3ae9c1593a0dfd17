"""The ``taskiq`` executor against the local one, in the same run (issue 13).

- **first event**: time from ``execute_streaming()`` to its first event, taskiq (a run queued,
  taken by a ``runstream worker`` subprocess, its events read back from Redis) vs local (the
  same pipeline in this process, same Redis event log and PostgreSQL store). Target: at most
  5 ms added at p50 on loopback.
- **cancel**: from ``handle.cancel()`` in this process to the task's ``finally`` on the worker
  (it writes ``time.time()`` to a file; one machine, one clock). Target (issue): 200 ms.
- **web CPU per stream**: ``--http``: the example app (one uvicorn process) serving concurrent
  chats, its CPU seconds (``/proc``) per stream, with the taskiq executor (2 workers) vs local:
  the first round of ``--streams`` chats after start-up (connections and pools still to open)
  and the next ``WARM_ROUNDS`` rounds (a running server), each reported.
  Target: lower with taskiq (the pipeline's work moved out).
- **soak**: ``--soak``: concurrent chats for a fixed time over 2 web processes + 2 workers vs
  one local web process: streams/s and p99 time to first event.

Servers (redis-server, PostgreSQL) and processes are started here on free 127.0.0.1 ports and
stopped by pid. Smoke: ``--quick``.

    uv run python bench/bench_taskiq.py --quick
    uv run python bench/bench_taskiq.py --runs 200 --http --soak --streams 1000 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins" / "taskiq" / "tests"), str(Path(__file__).parent)]

import httpx  # noqa: E402
from _common import header, row  # noqa: E402
from _taskiq_cluster import Shared, new_tag, workers  # noqa: E402
from runstream import Runtime  # noqa: E402
from taskiq_pipelines import slow_pipeline  # noqa: E402

from tests._cluster import example_cluster  # noqa: E402
from tests._redis_server import running_redis  # noqa: E402
from tests._servers import postgres_server  # noqa: E402

REF = "taskiq_pipelines:slow_pipeline"
#: Rounds of ``--streams`` chats measured after the first one (``--http``).
WARM_ROUNDS = 3


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def local_config(shared: Shared, directory: Path) -> Path:
    """The same servers, the local executor."""
    text = shared.config(directory).read_text()
    start, end = text.index("executor:"), text.index("event_log:")
    path = directory / "local.yaml"
    path.write_text(text[:start] + text[end:])
    return path


async def first_events(config: Path, runs: int) -> list[float]:
    pipeline = slow_pipeline()
    pipeline.ref = REF
    out = []
    async with Runtime(config) as runtime:
        for _ in range(runs):
            t0 = time.perf_counter()
            events = pipeline.execute_streaming({"count": 3, "interval": 0}, config=runtime)
            async for _event in events:
                out.append(time.perf_counter() - t0)
                break
            async for _event in events:
                pass
    return out


async def cancel_latencies(config: Path, runs: int, directory: Path) -> list[float]:
    pipeline = slow_pipeline()
    pipeline.ref = REF
    out = []
    async with Runtime(config) as runtime:
        for i in range(runs):
            marker = directory / f"cancel-{i}.txt"
            handle = pipeline.stream({"count": 100_000, "marker": str(marker),
                                      "interval": 0.01}, config=runtime)
            async for event in handle:
                if event.type == "step.event" and event.data["i"] == 2:
                    break
            t0 = time.time()
            await handle.cancel()
            # The worker's finally wrote the marker before the run's end reached us.
            out.append(marker.stat().st_mtime - t0)
    return out


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, clock ticks


async def chats(urls: list[str], streams: int, seconds: float | None) -> tuple[int, list[float]]:
    """``streams`` concurrent chat loops (once each, or for ``seconds``): streams done, and
    every stream's time to its first event."""
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    clients = [httpx.AsyncClient(base_url=u, timeout=60, limits=limits) for u in urls]
    firsts: list[float] = []
    done = 0
    deadline = None if seconds is None else time.monotonic() + seconds

    async def loop(i: int) -> None:
        nonlocal done
        client = clients[i % len(clients)]
        while True:
            t0 = time.perf_counter()
            async with client.stream("POST", "/chat", json={"prompt": f"q {i}"}) as response:
                first = True
                async for line in response.aiter_lines():
                    if first and line.startswith("data:"):
                        firsts.append(time.perf_counter() - t0)
                        first = False
            done += 1
            if deadline is None or time.monotonic() > deadline:
                return

    try:
        await asyncio.gather(*(loop(i) for i in range(streams)))
    finally:
        for client in clients:
            await client.aclose()
    return done, firsts


@contextlib.contextmanager
def servers() -> Iterator[tuple[Shared, Path]]:
    with tempfile.TemporaryDirectory(prefix="runstream-bench-") as tmp, \
            running_redis(Path(tmp) / "redis") as redis_server, postgres_server() as pg:
        dsn = pg.create_database("bench")
        yield Shared(redis_server.url, dsn, new_tag(), lease=10.0), Path(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="runs per first-event series")
    parser.add_argument("--quick", action="store_true", help="smoke: few runs, short phases")
    parser.add_argument("--http", action="store_true", help="also web CPU per stream")
    parser.add_argument("--soak", action="store_true", help="also the 2+2 soak")
    parser.add_argument("--streams", type=int, default=200, help="concurrent streams (http)")
    parser.add_argument("--seconds", type=float, default=30.0, help="soak phase length")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.streams, args.seconds = 5, 20, 3.0
        args.http = args.soak = True
    header("taskiq executor vs local")
    results: dict[str, Any] = {}
    with servers() as (shared, tmp):
        config, local = shared.config(tmp), local_config(shared, tmp)
        with workers(shared, config, tmp, 1, concurrency=100):
            taskiq = asyncio.run(first_events(config, args.runs))
            here = asyncio.run(first_events(local, args.runs))
            cancels = asyncio.run(cancel_latencies(config, max(3, args.runs // 5), tmp))
        added = (statistics.median(taskiq) - statistics.median(here)) * 1000
        results.update(first_event_taskiq_p50_ms=statistics.median(taskiq) * 1000,
                       first_event_local_p50_ms=statistics.median(here) * 1000,
                       first_event_added_p50_ms=added,
                       cancel_to_finally_p50_ms=statistics.median(cancels) * 1000,
                       cancel_to_finally_max_ms=max(cancels) * 1000)
        row("first event p50, taskiq / local", f"{statistics.median(taskiq) * 1000:.1f} / "
            f"{statistics.median(here) * 1000:.1f} ms", f"added {added:+.1f} ms (target <= 5)")
        row("first event p95, taskiq / local", f"{pct(taskiq, .95) * 1000:.1f} / "
            f"{pct(here, .95) * 1000:.1f} ms")
        row("cancel -> finally on the worker, p50 / max",
            f"{statistics.median(cancels) * 1000:.1f} / {max(cancels) * 1000:.1f} ms",
            "target 200 ms")
        if args.http:
            cpu = {}
            for name, cfg, count in (("taskiq", config, 2), ("local", local, 0)):
                with workers(shared, cfg, tmp, count, concurrency=args.streams,
                             delay_scale=0.2), \
                        example_cluster(tmp, cfg, 1, delay_scale=0.2) as (web,):
                    # The first round after start-up (pools and connections still to open)
                    # apart from the rounds after it: what a running server spends per stream.
                    before = proc_cpu(web.proc.pid)
                    done, _ = asyncio.run(chats([web.url], args.streams, None))
                    after = proc_cpu(web.proc.pid)
                    cpu[f"{name}_first_round"] = (after - before) / done * 1000
                    done = 0
                    for _ in range(WARM_ROUNDS):
                        done += asyncio.run(chats([web.url], args.streams, None))[0]
                    cpu[name] = (proc_cpu(web.proc.pid) - after) / done * 1000
            results.update(web_cpu_ms_per_stream=cpu)
            row("web process CPU per stream, first round, taskiq / local",
                f"{cpu['taskiq_first_round']:.2f} / {cpu['local_first_round']:.2f} ms")
            row(f"web process CPU per stream, next {WARM_ROUNDS} rounds, taskiq / local",
                f"{cpu['taskiq']:.2f} / {cpu['local']:.2f} ms",
                f"{cpu['taskiq'] / cpu['local']:.2f}x (target: taskiq lower)")
        if args.soak:
            soak = {}
            for name, cfg, webs, count in (("2 web + 2 workers", config, 2, 2),
                                           ("1 process, local", local, 1, 0)):
                with workers(shared, cfg, tmp, count, concurrency=args.streams,
                             delay_scale=0.2), \
                        example_cluster(tmp, cfg, webs, delay_scale=0.2) as cluster:
                    t0 = time.monotonic()
                    done, firsts = asyncio.run(
                        chats([w.url for w in cluster], args.streams, args.seconds))
                    elapsed = time.monotonic() - t0
                soak[name] = {"streams_per_s": done / elapsed,
                              "p99_first_event_ms": pct(firsts, .99) * 1000}
                row(f"soak {name}: streams/s, p99 first event",
                    f"{done / elapsed:.1f}/s, {pct(firsts, .99) * 1000:.0f} ms")
            multi, single = soak["2 web + 2 workers"], soak["1 process, local"]
            row("soak 2+2 / single process: streams/s, p99 first event",
                f"{multi['streams_per_s'] / single['streams_per_s']:.2f}x, "
                f"{multi['p99_first_event_ms'] / single['p99_first_event_ms']:.2f}x")
            results.update(soak=soak)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
