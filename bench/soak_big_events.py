"""Soak: 1 MB events and readers that stall, against a real uvicorn (issue 10, item 3).

The server is the FastAPI example (``examples.fastapi_llm.main.create_app``, ``memory`` run log
store) with one more route, ``GET /big?n=N``, whose task yields ``N`` events of
``--event-bytes`` (1 MB; a fresh string each, as a model's output would be) as fast as it can.
uvicorn, one worker, ``--loop uvloop --http httptools``, 127.0.0.1, pinned to core 0 with
``taskset``; every byte bound is runstream's default (``limits.max_event_bytes``,
``limits.max_queued_bytes``, the event log's ``max_run_bytes`` and ``max_total_bytes``);
``send_timeout`` and the replay ``ttl`` are short so that the soak ends in well under 2 minutes.

Clients (this process, core 1):

- ``--stalled`` (8) readers ask for ``/big?n=10000`` (10 GB if nothing held the run back), read
  the response head and ``--stall-after`` bytes (64 KiB) with a 4 KiB receive buffer, then stop
  reading: the server cuts them after ``--send-timeout`` s and cancels their runs;
- ``--readers`` (2) normal readers read ``/big?n=--reader-events`` (32) streams to their end,
  one after another, until the stalled runs have ended; each must get every event and
  ``run.completed``.

The server's VmRSS is sampled from /proc every 50 ms. Printed: RSS before the load, at its
peak and after the runs ended and the replay ``ttl`` passed; the configured byte limits; the
bound they imply for this load and the ratio of the peak RSS growth to it. The verdict fails
if the growth is over the bound, if a reader lost an event, or if the event log still holds
bytes after ``ttl``. RSS after ``ttl`` shows whether the allocator gave the memory back:
glibc's default keeps freed 1 MB blocks in the heap once its mmap threshold has grown past
them; ``--mmap-threshold 131072`` runs the server with that threshold fixed. Every process
started here is stopped by its process group on exit.

    uv run python bench/soak_big_events.py            # ~30 s
    uv run python bench/soak_big_events.py --stalled 16 --readers 4 --send-timeout 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from soak_sse import HOST, Server, http_get, proc_sample  # noqa: E402

MIB = 1024 * 1024

# --------------------------------------------------------------------------------------------
# The server (imported by uvicorn in the server process: ``--app-dir bench soak_big_events:app``)
# --------------------------------------------------------------------------------------------


def app() -> Any:
    """The example app plus ``/big`` and ``/_soak/limits`` (settings from SOAK_* variables)."""
    from runstream import AsyncPipeline, ComponentConfig, Config, MemoryEventLog, Runtime
    from runstream_async_python import AsyncPythonTask
    from runstream_sse import runs_router, sse_response
    from runstream_sse._writer import WRITE_BYTES
    from starlette.responses import JSONResponse, Response

    from examples.fastapi_llm.main import create_app

    event_bytes = int(os.environ["SOAK_EVENT_BYTES"])
    send_timeout = float(os.environ["SOAK_SEND_TIMEOUT"])
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory"),  # default bounds
                             event_log=ComponentConfig(type="memory",
                                                       ttl=float(os.environ["SOAK_TTL"]))))
    replay = runtime.event_log
    assert isinstance(replay, MemoryEventLog)
    example = create_app(config=runtime, send_timeout=send_timeout)

    async def big(n: int) -> Any:
        for i in range(n):
            # A new string per event (a model's output is), 1 MB of ASCII.
            yield {"type": "chunk", "i": i, "text": f"{i:09d} " * (event_bytes // 10)}

    pipeline = AsyncPipeline("big", [AsyncPythonTask(name="big", function=big)])

    async def big_route(n: int = 10) -> Response:
        return sse_response(pipeline, {"n": n}, config=runtime, send_timeout=send_timeout)

    async def limits() -> JSONResponse:
        lim = runtime.config.limits
        return JSONResponse({
            "max_event_bytes": lim.max_event_bytes, "max_queued_bytes": lim.max_queued_bytes,
            "max_run_bytes": replay.max_run_bytes, "max_total_bytes": replay.max_total_bytes,
            "write_bytes": WRITE_BYTES, "ttl": replay.ttl, "send_timeout": send_timeout,
            "bytes_kept": replay.bytes_kept(), "runs_kept": len(replay.run_ids())})

    example.add_api_route("/big", big_route, methods=["GET"])
    # /big's runs have no session owner (the example's /runs serves a run to its session only):
    # the soak reads their status from a runs router of its own, without authorize.
    example.include_router(runs_router(runtime, prefix="/_soak/runs"))
    example.add_api_route("/_soak/limits", limits, methods=["GET"])
    return example


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------


def stall(port: int, n: int, read: int) -> tuple[socket.socket, str]:
    """Ask for ``n`` big events, read the head and about ``read`` bytes, then stop reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.settimeout(30)
    sock.connect((HOST, port))
    sock.sendall(f"GET /big?n={n} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    got = b""
    while b"\r\n\r\n" not in got or len(got) < read:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    head = got.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    run_id = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.startswith("x-run-id:")), "")
    return sock, run_id


async def read_stream(port: int, n: int) -> dict[str, Any]:
    """Read ``/big?n=n`` to its end: the number of events and how it ended."""
    reader, writer = await asyncio.open_connection(HOST, port, limit=4 * MIB)
    try:
        writer.write(f"GET /big?n={n} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                     "Accept: text/event-stream\r\nConnection: close\r\n\r\n".encode())
        events = 0
        ended = ""
        marker = b'data: {"type": "chunk", "i": '
        names = (b"event: run.completed", b"event: run.failed", b"event: run.cancelled")
        keep = max(len(marker), *map(len, names)) - 1  # too short to hold a whole one
        tail = b""
        while True:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            window = tail + chunk
            events += window.count(marker)
            for name in names:
                if name in window:
                    ended = name.decode().split(": ", 1)[1]
            tail = window[-keep:]
        return {"events": events, "ended": ended}
    finally:
        writer.close()


class Sampler(threading.Thread):
    """VmRSS of ``pid`` every ``interval`` s, until stopped."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stopped.is_set():
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic() - t0, proc_sample(self.pid)[0]))
            self.stopped.wait(self.interval)

    def peak(self) -> float:
        return max(rss for _, rss in self.samples)


def get_json(port: int, path: str) -> Any:
    status, body = asyncio.run(http_get(port, path))
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
    return json.loads(body)


def run_status(port: int, run_id: str) -> str:
    status, body = asyncio.run(http_get(port, f"/_soak/runs/{run_id}"))
    return str(json.loads(body)["status"]) if status == 200 else "unknown"


# --------------------------------------------------------------------------------------------
# The conductor
# --------------------------------------------------------------------------------------------


def bound_mb(limits: dict[str, Any], running: int) -> tuple[float, str]:
    """What the configured limits allow the server to hold for ``running`` runs at once.

    The event log: ``max_total_bytes``, or more if the running runs alone hold more (up to
    ``max_run_bytes`` each). Per running run besides: its queue (``max_queued_bytes``), one
    write in its socket's buffer (``write_bytes``, or one event if bigger), and 5 events at
    most: the one past the queue's bound, the one past the run buffer's, the frame being
    encoded and its UTF-8 copy, and the event the task is making. Not counted: the
    allocator's own overhead and fragmentation.
    """
    event = limits["max_event_bytes"]
    replay = max(limits["max_total_bytes"], running * limits["max_run_bytes"])
    per_run = limits["max_queued_bytes"] + max(limits["write_bytes"], event) + 5 * event
    formula = (f"max(max_total_bytes, {running} runs x max_run_bytes) + {running} runs x "
               "(max_queued_bytes + one write + 5 x max_event_bytes)")
    return (replay + running * per_run) / MIB, formula


def soak(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    port = server.port
    limits = get_json(port, "/_soak/limits")
    asyncio.run(read_stream(port, 2))  # warm-up: imports, first run
    time.sleep(0.5)
    rss_before = proc_sample(server.pid)[0]
    sampler = Sampler(server.pid)
    sampler.start()
    t0 = time.monotonic()
    stalled = [stall(port, 10_000, args.stall_after) for _ in range(args.stalled)]
    print(f"# {len(stalled)} stalled readers connected in {time.monotonic() - t0:.1f} s",
          file=sys.stderr, flush=True)
    results: list[dict[str, Any]] = []
    deadline = t0 + args.send_timeout + 20

    def stalled_running() -> bool:
        return any(run_status(port, run_id) == "running" for _, run_id in stalled)

    async def readers() -> None:
        async def loop() -> None:
            while time.monotonic() < deadline:
                results.append(await read_stream(port, args.reader_events))
                if not await asyncio.to_thread(stalled_running):
                    return
        await asyncio.gather(*(loop() for _ in range(args.readers)))

    asyncio.run(readers())
    while stalled_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    ended_s = time.monotonic() - t0
    statuses = [run_status(port, run_id) for _, run_id in stalled]
    kept_at_end = get_json(port, "/_soak/limits")
    for sock, _ in stalled:
        sock.close()
    time.sleep(limits["ttl"] + 2.0)  # the event log drops the ended runs after ttl
    after = get_json(port, "/_soak/limits")
    sampler.stopped.set()
    sampler.join()
    rss_after = proc_sample(server.pid)[0]
    peak = sampler.peak()
    running = args.stalled + args.readers
    bound, formula = bound_mb(limits, running)
    growth = peak - rss_before
    lost = [r for r in results if r["events"] != args.reader_events or r["ended"] !=
            "run.completed"]
    return {"limits": limits, "rss_before_mb": round(rss_before, 1),
            "rss_peak_mb": round(peak, 1), "rss_after_ttl_mb": round(rss_after, 1),
            "growth_mb": round(growth, 1), "bound_mb": round(bound, 1), "formula": formula,
            "ratio": round(growth / bound, 3), "stalled_statuses": statuses,
            "stalled_ended_s": round(ended_s, 1), "reader_streams": len(results),
            "reader_streams_lost_events": len(lost),
            "bytes_kept_at_end": kept_at_end["bytes_kept"],
            "runs_kept_at_end": kept_at_end["runs_kept"],
            "bytes_kept_after_ttl": after["bytes_kept"],
            "rss_timeline_mb": [(round(t, 2), round(r, 1)) for t, r in sampler.samples[::20]]}


def summary(args: argparse.Namespace, r: dict[str, Any], load: tuple[float, float]) -> bool:
    lim = r["limits"]
    print(f"# {args.stalled} stalled readers (read {args.stall_after // 1024} KiB, then "
          f"nothing) + {args.readers} normal readers ({args.reader_events} x "
          f"{args.event_bytes / 1e6:g} MB per stream); send_timeout {lim['send_timeout']} s, "
          f"replay ttl {lim['ttl']} s; MALLOC_MMAP_THRESHOLD_ "
          f"{args.mmap_threshold or '(glibc default)'}; load average {load[0]:.2f} -> "
          f"{load[1]:.2f}")
    print("## configured byte limits (runstream defaults)")
    for key in ("max_event_bytes", "max_queued_bytes", "max_run_bytes", "max_total_bytes",
                "write_bytes"):
        print(f"  {key:<20} {lim[key] / MIB:8.2f} MiB")
    print("## server RSS (VmRSS)")
    print(f"  before the load      {r['rss_before_mb']:8.1f} MiB")
    print(f"  peak                 {r['rss_peak_mb']:8.1f} MiB  (growth {r['growth_mb']:.1f} MiB)")
    print(f"  after ttl            {r['rss_after_ttl_mb']:8.1f} MiB")
    print(f"  bound, {args.stalled + args.readers} runs at once {r['bound_mb']:8.1f} MiB  = "
          f"{r['formula']}")
    print(f"  growth / bound       {r['ratio']:8.3f}")
    print("## runs")
    statuses = {s: r["stalled_statuses"].count(s) for s in set(r["stalled_statuses"])}
    print(f"  stalled runs         {statuses} (all ended {r['stalled_ended_s']} s after "
          "the first request)")
    print(f"  reader streams       {r['reader_streams']}, "
          f"{r['reader_streams_lost_events']} with a lost event or no run.completed")
    print(f"  event log            {r['bytes_kept_at_end'] / MIB:.1f} MiB in "
          f"{r['runs_kept_at_end']} runs when the stalled runs had ended; "
          f"{r['bytes_kept_after_ttl']} bytes after ttl")
    ok = (r["growth_mb"] <= r["bound_mb"] and r["reader_streams_lost_events"] == 0
          and r["reader_streams"] > 0 and r["bytes_kept_after_ttl"] == 0
          and all(s == "cancelled" for s in r["stalled_statuses"]))
    print(f"# verdict: {'PASS' if ok else 'FAIL'} (peak RSS growth within the bound, no lost "
          "event, stalled runs cancelled, event log empty after ttl)")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stalled", type=int, default=8, help="readers that stop reading")
    parser.add_argument("--readers", type=int, default=2, help="readers that keep up")
    parser.add_argument("--reader-events", type=int, default=32,
                        help="events per normal reader's stream")
    parser.add_argument("--event-bytes", type=int, default=1_000_000)
    parser.add_argument("--stall-after", type=int, default=64 * 1024,
                        help="bytes a stalled reader reads before it stops")
    parser.add_argument("--send-timeout", type=float, default=10.0)
    parser.add_argument("--ttl", type=float, default=3.0, help="the event log's ttl")
    parser.add_argument("--mmap-threshold", type=int, default=None,
                        help="run the server with MALLOC_MMAP_THRESHOLD_=N (glibc): big "
                             "allocations are then returned to the system when freed")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" /
                        "soak_big_events.json")
    args = parser.parse_args()

    from _common import header

    header("soak_big_events: 1 MB events, stalled and normal readers (issue 10, item 3)")
    cores = sorted(os.sched_getaffinity(0))
    server_core = None
    if shutil.which("taskset") and len(cores) >= 2:
        server_core = cores[0]
        os.sched_setaffinity(0, {cores[1]})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNSTREAM_", "RUNNABLE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(SOAK_EVENT_BYTES=str(args.event_bytes), SOAK_SEND_TIMEOUT=str(args.send_timeout),
               SOAK_TTL=str(args.ttl))
    if args.mmap_threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    workdir = Path(tempfile.mkdtemp(prefix="runstream-soak-big-"))
    load_start = os.getloadavg()[0]
    server = Server("runstream", "soak_big_events:app", env, workdir, server_core)
    try:
        server.wait_ready()
        result = soak(args, server)
    except KeyboardInterrupt:
        print("# interrupted", file=sys.stderr)
        return 130
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    ok = summary(args, result, (load_start, os.getloadavg()[0]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"# details: {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
