"""Per-run cost of one chat, in process (issue 16): CPU per chat and where it goes.

Drives ``--chats`` chats (``POST /chat``, the soak's request: a JSON prompt, no cookie, so each
chat also opens a session) through the FastAPI example (``examples.fastapi_llm.main``) by calling
the ASGI app directly: no sockets, no HTTP parser, no client. The mock model's delays are scaled
to 0 (``--delay-scale 0.04``: paced, 2 ms per word), ``--concurrency`` chats are in flight at
a time, the run log store is sqlite in a temp dir (``--store memory`` for comparison), the
event log is memory. Every response is checked (status 200, ends with ``run.completed``).

    uv run python bench/profile_chat.py                      # CPU per chat, 3 rounds of 2,000
    uv run python bench/profile_chat.py --profile            # + cProfile, by component
    uv run python bench/profile_chat.py --profile --top 40   # + the top functions (tottime)

The bare app of the soak (bench/soak_sse.py ``baseline_app``) is driven the same way for the
ratio. CPU is the process's (``time.process_time``: the sqlite writer thread included).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]

#: Components of a chat by the file a function lives in (first match wins).
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    ("thread hops (executor futures, anyio's thread pool, locks)",
     ("concurrent/futures", "threading.py", "anyio", "queue.py")),
    ("run log store (sqlite; its thread is not profiled)", ("_store_sqlite", "_sqlite_batch",
                                                           "sqlite3")),
    ("run log records (_runlog, _recorder, _recording, pydantic)",
     ("_runlog", "_recorder", "_recording", "pydantic")),
    ("run set-up and teardown (_pipeline, _drive, _runtime, _leases, _owner, _secrets, "
     "_params, _config, _watchdog)",
     ("_pipeline", "_drive", "_runtime", "_leases", "_owner", "_secrets", "_params", "_config",
      "_plugins", "_registry", "_sinks", "_watchdog", "_store.py", "_runlog")),
    ("events: the run's steps and task (_run, _steps, _task, _channel, _size, async-python, "
     "the mock model)",
     ("runstream/_", "runstream_async_python", "llm_mock")),
    ("runstream-sse (_serve, _inflight, _tee, _feed, _live, _encoder, _wire, ...)",
     ("runstream_sse",)),
    ("example app (sessions, body limit)", ("examples/fastapi_llm",)),
    ("FastAPI/Starlette (middleware, routing, dependencies, body, responses)",
     ("fastapi", "starlette")),
    ("json (event data)", ("json/",)),
    ("asyncio (tasks, futures, the loop)", ("asyncio",)),
]


def app_runstream(store: str, tmp: Path, delay_scale: float = 0.0) -> Any:
    from runstream import ComponentConfig, Config

    from examples.fastapi_llm.main import create_app

    store_cfg = (ComponentConfig(type="memory") if store == "memory"
                 else ComponentConfig(type="sqlite", path=str(tmp / "runs.db")))
    return create_app(config=Config(run_log_store=store_cfg,
                                    event_log=ComponentConfig(type="memory")),
                      delay_scale=delay_scale)


def app_bare(delay_scale: float = 0.0, *, fastapi: bool = False) -> Any:
    import types

    import soak_sse

    sleep = asyncio.sleep

    async def scaled(seconds: float) -> None:
        await sleep(seconds * delay_scale)  # as the example's mock model with delay_scale

    # The bare app's module sees an asyncio whose sleep waits delay_scale times as long.
    soak_sse.asyncio = types.SimpleNamespace(sleep=scaled)  # type: ignore[assignment]
    return soak_sse.fastapi_baseline_app() if fastapi else soak_sse.baseline_app()


async def chat(app: Any, n: int, sink: dict[str, int]) -> None:
    body = json.dumps({"prompt": f"profile-{n}"}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/chat", "raw_path": b"/chat",
             "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8000),
             "client": ("127.0.0.1", 40000 + n % 20000),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"text/event-stream"),
                         (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()),
                         (b"connection", b"close")]}
    done = asyncio.Event()
    sent = False
    status = 0
    last = b""

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, last
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            if message.get("body"):
                last = message["body"]
            if not message.get("more_body", False):
                done.set()

    await app(scope, receive, send)
    done.set()
    if status != 200 or b"run.completed" not in last:
        sink["failed"] = sink.get("failed", 0) + 1
    else:
        sink["ok"] = sink.get("ok", 0) + 1


async def drive(app: Any, chats: int, concurrency: int, offset: int) -> dict[str, int]:
    sink: dict[str, int] = {}
    sem = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with sem:
            await chat(app, n, sink)

    await asyncio.gather(*(one(offset + i) for i in range(chats)))
    return sink


async def lifespan(app: Any) -> tuple[asyncio.Task[None], Callable[[], Any]]:
    started = asyncio.Event()
    stop = asyncio.Event()
    messages = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            if message["type"].endswith("failed"):
                raise RuntimeError(message.get("message"))
            started.set()

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                      "state": {}}, receive, send))
    await started.wait()
    return task, stop.set


def component_of(filename: str) -> str:
    for name, needles in COMPONENTS:
        if any(needle in filename for needle in needles):
            return name
    return "other (stdlib, builtins)"


def by_component(stats: pstats.Stats, chats: int) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in (
            stats.stats.items()):  # type: ignore[attr-defined]
        key = component_of(filename)
        totals[key] = totals.get(key, 0.0) + tottime
    return sorted(((k, v * 1000 / chats) for k, v in totals.items()), key=lambda kv: -kv[1])


async def measure(args: argparse.Namespace, which: str, tmp: Path) -> None:
    app = (app_runstream(args.store, tmp, args.delay_scale) if which == "runstream"
           else app_bare(args.delay_scale, fastapi=which == "fastapi"))
    task, stop = await lifespan(app)
    try:
        await drive(app, args.warmup, args.concurrency, 10_000_000)
        gc.collect()
        per_chat: list[float] = []
        profiler = cProfile.Profile() if args.profile else None
        for r in range(args.rounds):
            t0 = time.process_time()
            if profiler is not None and r == args.rounds - 1:
                profiler.enable()
            result = await drive(app, args.chats, args.concurrency, r * args.chats)
            if profiler is not None and r == args.rounds - 1:
                profiler.disable()
            per_chat.append((time.process_time() - t0) * 1000 / args.chats)
            if result.get("failed"):
                raise SystemExit(f"{which}: {result['failed']} chats failed")
        print(f"  {which:<10} CPU per chat ms: {' '.join(f'{x:.3f}' for x in per_chat)}"
              f"  (min {min(per_chat):.3f})")
        if profiler is not None:
            stats = pstats.Stats(profiler)
            total = sum(v for _, v in by_component(stats, args.chats))
            scale = min(per_chat[:-1] or per_chat) / total
            print(f"    profiled round, by component: ms per chat, cProfile's own time "
                  f"(total {total:.3f}: inflated) and scaled to the unprofiled CPU per chat:")
            for name, ms in by_component(stats, args.chats):
                print(f"      {ms:7.3f} {ms * scale:7.3f}  {name}")
            if args.top:
                stats.sort_stats("tottime").print_stats(args.top)
            if args.dump:
                stats.dump_stats(args.dump)
    finally:
        stop()
        await task


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--profile", action="store_true", help="cProfile the last round")
    parser.add_argument("--top", type=int, default=0, help="print the top N functions")
    parser.add_argument("--dump", help="write the pstats file here")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare app")
    parser.add_argument("--fastapi", action="store_true",
                        help="also the bare app's chat as a FastAPI endpoint (FastAPI's share)")
    parser.add_argument("--delay-scale", type=float, default=0.0,
                        help="scale the model's delays (0: none; 0.04: 2 ms per word, paced "
                             "as the soak's words, past the SSE burst window)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (as the soak)")
    args = parser.parse_args()
    print(f"# profile_chat: {args.chats} chats x {args.rounds} rounds, {args.concurrency} in "
          f"flight, store {args.store}; load avg {os.getloadavg()[0]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="runstream-profile-"))
    runner = asyncio.run
    if args.uvloop:
        import uvloop

        runner = uvloop.run  # type: ignore[assignment]
    try:
        runner(measure(args, "runstream", tmp))
        if not args.no_bare:
            bare = argparse.Namespace(**{**vars(args), "profile": False})
            runner(measure(bare, "bare", tmp))
        if args.fastapi:
            runner(measure(argparse.Namespace(**{**vars(args), "profile": False}), "fastapi",
                           tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
