"""Soak: 1,000 concurrent SSE chat streams against the FastAPI example for 60 s (issue 6).

The example server (``examples.fastapi_llm.main.create_app``) runs as its own process: uvicorn,
one worker, ``--loop uvloop --http httptools``, on 127.0.0.1, pinned to core 0 with ``taskset``.
Its run log store is ``sqlite`` in a temp dir: the default, and what a production user runs
(run logs outlive the process and ``GET /runs/{id}`` answers for every run; the bounded
``memory`` store would evict the early runs of a 40,000-run soak). ``--store memory`` is there
for comparison.

Clients: several processes (``--clients``, default 4) pinned to core 1, each with its share of
the streams as asyncio tasks over raw ``asyncio.open_connection`` sockets and a minimal
HTTP/1.1 + chunked + SSE reader (far cheaper than httpx). Each stream POSTs ``/chat`` with a
prompt no other stream uses, reads to the end, and checks: status 200, the ``done`` event's
``full_text`` quotes its own prompt, the chunks add up to ``full_text`` (no cross-talk), and the
stream ends with a named ``run.completed`` event. Then it reconnects with a new prompt.

- Phase 1 (steady): every stream runs to its end.
- Phase 2 (disconnects): ``--disconnect-fraction`` (0.3) of the streams close the socket after
  a random number (0-15) of events, then reconnect with a new prompt. Afterwards the run ids of
  the abandoned streams (``X-Run-Id``; a sample of up to 500) are looked up with
  ``GET /runs/{id}``: every one must be ``cancelled``.

Recorded per phase: streams completed and failed (must be 0), time to the first ``data:`` line
(p50/p99, from the request sent), stream duration (p50/p99), the server's RSS (VmRSS, every
second) with a flatness verdict (median of the second half of the phase against the first
window after warm-up), and the server's CPU time. Baseline in the same run: the same load
against a minimal Starlette ``StreamingResponse`` app streaming the same pre-formatted events
at the same pace (no runstream); with ``--fastapi-baseline`` also the same chat as a FastAPI
endpoint with a pydantic body (``fastapi_baseline_app``: no runstream either), since the example
is a FastAPI app and the ratio against it leaves out what FastAPI's own request handling costs.

    uv run python bench/soak_sse.py --quick          # 200 streams, 15 s per phase
    uv run python bench/soak_sse.py                  # 1,000 streams, 60 s per phase (~5 min)
    uv run python bench/soak_sse.py --streams 500 --duration 30 --no-baseline

Across processes (issue 12): ``--workers N`` runs the example under ``uvicorn --workers N``
(on every core then, as redis-server and PostgreSQL are: the workers share the cores with the
clients); ``--event-log redis`` and ``--store postgres`` give it a shared event log and run log
store, on a ``redis-server`` and a PostgreSQL this script starts in temp dirs on free ports and
stops at the end. ``--compare-workers 1,2`` soaks the example once per worker count (each on a fresh
database and key prefix; no baseline) and prints the ratios of streams/s and p99 first event::

    uv run python bench/soak_sse.py --event-log redis --store postgres --compare-workers 1,2

Summary on stdout, details in bench/results/soak_sse.json. Traffic goes to 127.0.0.1 only;
every process started here is stopped (process groups) on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "soak_sse.json"
HOST = "127.0.0.1"

#: A stream that takes longer than this is a failure ("timeout"); ideal length ~1.4 s.
STREAM_TIMEOUT = 30.0
#: Abandoned streams close after this many data events at most (the answer has ~22): the run
#: has at least ~6 words (300 ms) left when its client goes.
MAX_EVENTS_BEFORE_ABANDON = 15
CANCEL_SAMPLE = 500

# --------------------------------------------------------------------------------------------
# The two servers (imported by uvicorn in the server process: ``--app-dir bench soak_sse:...``)
# --------------------------------------------------------------------------------------------


def runstream_app() -> Any:
    """The FastAPI example with the store named by SOAK_STORE (sqlite at SOAK_DB, or memory)."""
    from runstream import ComponentConfig, Config

    from examples.fastapi_llm.main import create_app

    kind = os.environ.get("SOAK_STORE", "sqlite")
    if kind == "memory":
        store = ComponentConfig(type="memory")  # bounded: max_runs 10,000
    elif kind == "postgres":
        store = ComponentConfig(type="postgres", dsn=os.environ["SOAK_DSN"])
    else:
        store = ComponentConfig(type="sqlite", path=os.environ["SOAK_DB"])
    event_log = ComponentConfig(type="memory")
    if os.environ.get("SOAK_REDIS_URL"):
        event_log = ComponentConfig(type="redis", url=os.environ["SOAK_REDIS_URL"],
                                    key_prefix=os.environ["SOAK_REDIS_PREFIX"])
    app = create_app(config=Config(run_log_store=store, event_log=event_log))
    app.add_api_route("/_soak/objects", _objects, methods=["GET"])
    return app


async def _objects() -> Any:
    """Leak probe, asked between phases only: live asyncio tasks and objects by type."""
    import collections
    import gc

    from starlette.responses import JSONResponse

    gc.collect()
    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    return JSONResponse({"tasks": len(asyncio.all_tasks()), "objects": sum(counts.values()),
                         "by_type": dict(counts.most_common(40))})


def _answer(prompt: str) -> tuple[list[str], str]:
    """The words and full text of the example's mock LLM (examples/fastapi_llm/llm_mock.py)."""
    preview = prompt[:50] + ("..." if len(prompt) > 50 else "")
    response = (f"I received your prompt: '{preview}'. Here is my simulated response with "
                "multiple words to demonstrate token-by-token streaming in action.")
    words = response.split()
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)], response


def baseline_app() -> Any:
    """Minimal Starlette app: the same events at the same pace, pre-formatted, no runstream."""
    import uuid

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    thinking = b'id: 1\ndata: {"type": "status", "status": "thinking"}\n\n'
    generating = b'id: 2\ndata: {"type": "status", "status": "generating"}\n\n'

    async def chat(request: Request) -> StreamingResponse:
        prompt = (await request.json())["prompt"]
        words, full = _answer(prompt)
        frames = [f"id: {i + 3}\ndata: {json.dumps({'type': 'chunk', 'text': w})}\n\n".encode()
                  for i, w in enumerate(words)]
        n = len(frames) + 3
        done = f"id: {n}\ndata: {json.dumps({'type': 'done', 'full_text': full})}\n\n".encode()
        end = f'event: run.completed\nid: {n + 1}\ndata: {{"status": "completed"}}\n\n'.encode()

        async def events() -> Any:
            yield thinking
            await asyncio.sleep(0.3)
            yield generating
            await asyncio.sleep(0.1)
            for frame in frames:
                yield frame
                await asyncio.sleep(0.05)
            yield done
            yield end

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"X-Run-Id": uuid.uuid4().hex,
                                          "Cache-Control": "no-cache"})

    async def root(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def objects(_request: Request) -> Any:
        return await _objects()

    return Starlette(routes=[Route("/", root), Route("/chat", chat, methods=["POST"]),
                             Route("/_soak/objects", objects)])


def fastapi_baseline_app() -> Any:
    """The bare app's chat as a FastAPI endpoint (a pydantic body, ``StreamingResponse``): what
    FastAPI's own request handling adds, with no runstream (the example is a FastAPI app)."""
    from fastapi import FastAPI
    from pydantic import BaseModel
    from starlette.responses import StreamingResponse

    chat = baseline_app().routes[1].endpoint

    class ChatBody(BaseModel):
        prompt: str

    async def fastapi_chat(body: ChatBody) -> StreamingResponse:
        return await chat(_JSONBody({"prompt": body.prompt}))

    # This module's annotations are strings (``from __future__ import annotations``) that
    # FastAPI would look up in the module's globals: give it the classes.
    fastapi_chat.__annotations__ = {"body": ChatBody, "return": StreamingResponse}
    async def root() -> dict[str, str]:
        return {"status": "ok"}

    app = FastAPI()
    app.add_api_route("/", root, methods=["GET"])
    app.add_api_route("/chat", fastapi_chat, methods=["POST"])
    app.add_api_route("/_soak/objects", _objects, methods=["GET"])
    return app


class _JSONBody:
    """What the bare app's endpoint reads of its request: the JSON body (already parsed)."""

    __slots__ = ("_body",)

    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    async def json(self) -> dict[str, Any]:
        return self._body


# --------------------------------------------------------------------------------------------
# The client: raw asyncio streams, HTTP/1.1 (chunked) and SSE, just enough for these servers
# --------------------------------------------------------------------------------------------


class StreamFailure(Exception):
    """A stream broke a rule; ``reason`` is the failure category."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _dechunk(raw: bytes) -> tuple[bytes, bytes, bool]:
    """Decode the complete chunks at the start of ``raw``: (payload, rest, last chunk seen)."""
    out: list[bytes] = []
    pos = 0
    n = len(raw)
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            break
        try:
            size = int(raw[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            raise StreamFailure("bad chunked encoding", repr(raw[pos:eol][:40])) from None
        if size == 0:
            return b"".join(out), b"", True
        end = eol + 2 + size
        if n < end + 2:
            break
        out.append(raw[eol + 2:end])
        pos = end + 2
    return b"".join(out), raw[pos:], False


async def one_stream(port: int, prompt: str, abandon_after: int | None) -> dict[str, Any]:
    """POST /chat with ``prompt`` and read the SSE stream to its end (or abandon it after
    ``abandon_after`` data events). Raises StreamFailure; returns what was measured."""
    perf = time.perf_counter
    body = json.dumps({"prompt": prompt}).encode()
    request = (f"POST /chat HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError as exc:
        raise StreamFailure("connect error", f"{type(exc).__name__}: {exc}") from None
    t0 = perf()
    first: float | None = None
    run_id = ""
    try:
        writer.write(request)
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = await reader.read(65536)
            if not data:
                raise StreamFailure("connection closed before the response headers")
            raw += data
        head, raw = raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        run_id = headers.get("x-run-id", "")
        # The example serves a run's log only to the session that started it (its cookie).
        cookie = headers.get("set-cookie", "").split(";", 1)[0]
        if status != 200:
            raise StreamFailure(f"status {status}", raw[:200].decode("utf-8", "replace"))
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        if abandon_after == 0:
            return {"abandoned": True, "run_id": run_id, "ttfe": None, "events": 0,
                    "cookie": cookie}

        sse = b""
        events = 0
        chunks: list[str] = []
        full_text: str | None = None
        terminal: str | None = None
        finished = False
        eof = False
        while not finished:
            if chunked:
                payload, raw, finished = _dechunk(raw)
            else:
                payload, raw = raw, b""
                finished = eof
            sse += payload
            while (cut := sse.find(b"\n\n")) >= 0:
                block = sse[:cut]
                sse = sse[cut + 2:]
                name = None
                data: list[bytes] = []
                for line in block.split(b"\n"):
                    if line.startswith(b"data:"):
                        value = line[5:]
                        data.append(value[1:] if value.startswith(b" ") else value)
                    elif line.startswith(b"event:"):
                        name = line[6:].strip().decode()
                if not data:
                    continue  # a comment (ping)
                if first is None:
                    first = perf() - t0
                if terminal is not None:
                    raise StreamFailure("event after the terminal event", terminal)
                if name is not None:
                    terminal = name
                    continue
                events += 1
                item = json.loads(b"\n".join(data))
                kind = item.get("type")
                if kind == "chunk":
                    chunks.append(item["text"])
                elif kind == "done":
                    full_text = item["full_text"]
                if abandon_after is not None and events >= abandon_after:
                    return {"abandoned": True, "run_id": run_id, "ttfe": first,
                            "events": events, "cookie": cookie}
            if finished:
                break
            if eof:
                raise StreamFailure("connection closed mid-stream",
                                    f"after {events} events, terminal {terminal}")
            data_in = await reader.read(65536)
            if data_in:
                raw += data_in
            else:
                eof = True
        duration = perf() - t0
        if terminal != "run.completed":
            raise StreamFailure("no run.completed at the end", f"terminal {terminal!r}")
        if full_text is None:
            raise StreamFailure("no done event")
        if f"'{prompt}'" not in full_text:
            raise StreamFailure("cross-talk: full_text does not quote this prompt",
                                f"{prompt!r} vs {full_text[:120]!r}")
        if "".join(chunks) != full_text:
            raise StreamFailure("cross-talk: chunks do not add up to full_text",
                                f"{''.join(chunks)[:120]!r}")
        # Let the server close first (Connection: close): its side keeps the TIME_WAIT.
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(reader.read(), 2.0)
        return {"abandoned": False, "run_id": run_id, "ttfe": first, "duration": duration,
                "events": events}
    except StreamFailure as exc:
        if run_id and not exc.detail.startswith("run "):
            exc.detail = f"run {run_id}: {exc.detail}"
        raise
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise StreamFailure("connection error", f"run {run_id}: {type(exc).__name__}: {exc}"
                            ) from None
    except (ValueError, KeyError) as exc:
        raise StreamFailure("malformed response", f"run {run_id}: {type(exc).__name__}: {exc}"
                            ) from None
    finally:
        writer.close()


async def client_main(cfg: dict[str, Any]) -> dict[str, Any]:
    """One client process: ``cfg["tasks"]`` streams in a loop until ``cfg["duration"]``."""
    rng = random.Random(cfg["seed"])
    port: int = cfg["port"]
    fraction: float = cfg["disconnect_fraction"]
    ttfe: list[float] = []
    durations: list[float] = []
    abandoned: list[str] = []
    failures: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    counts = {"started": 0, "completed": 0, "abandoned": 0, "events": 0}
    start = time.monotonic()
    deadline = start + cfg["duration"]

    async def worker(index: int) -> None:
        # Ramp up over one stream's length, so that the streams do not move in lockstep.
        await asyncio.sleep(cfg["ramp"] * index / max(1, cfg["tasks"]))
        n = 0
        while time.monotonic() < deadline:
            n += 1
            prompt = f"{cfg['tag']}-c{cfg['client']}-w{index}-n{n}"
            abandon = (rng.randint(0, MAX_EVENTS_BEFORE_ABANDON)
                       if fraction and rng.random() < fraction else None)
            counts["started"] += 1
            try:
                async with asyncio.timeout(STREAM_TIMEOUT):
                    result = await one_stream(port, prompt, abandon)
            except StreamFailure as exc:
                failures[exc.reason] = failures.get(exc.reason, 0) + 1
                if len(examples.setdefault(exc.reason, [])) < 5:
                    examples[exc.reason].append(exc.detail[:300])
                await asyncio.sleep(0.05)
                continue
            except TimeoutError:
                failures["timeout"] = failures.get("timeout", 0) + 1
                if len(examples.setdefault("timeout", [])) < 5:
                    examples["timeout"].append(f"prompt {prompt!r}")
                continue
            counts["events"] += result["events"]
            if result["ttfe"] is not None:
                ttfe.append(result["ttfe"])
            if result["abandoned"]:
                counts["abandoned"] += 1
                abandoned.append([result["run_id"], abandon, result.get("cookie", "")])
            else:
                counts["completed"] += 1
                durations.append(result["duration"])

    await asyncio.gather(*(worker(i) for i in range(cfg["tasks"])))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"ttfe": ttfe, "durations": durations, "abandoned_ids": abandoned,
            "failures": failures, "failure_examples": examples, **counts,
            "wall": time.monotonic() - start, "cpu": usage.ru_utime + usage.ru_stime}


def _run_client(cfg_json: str) -> int:
    cfg = json.loads(cfg_json)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        pass
    result = asyncio.run(client_main(cfg))
    Path(cfg["out"]).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------------------------
# The conductor: servers, phases, sampling, verdicts
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pin(core: int | None) -> list[str]:
    return ["taskset", "-c", str(core)] if core is not None else []


#: Every core this script may use (set in main, before it pins itself to the clients' core).
ALL_CORES: list[int] = []


def unpinned() -> list[str]:
    """A child on every core: the conductor pins itself to the clients' core, and a child
    started without taskset would inherit that (several workers, redis-server and PostgreSQL
    all on the clients' core, the other core idle)."""
    if not ALL_CORES or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", ",".join(map(str, ALL_CORES))]


def group_pids(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` (a server and its ``--workers``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry))
    return pids or [pgid]


def proc_sample(pid: int) -> tuple[float, float, int]:
    """(VmRSS in MB, CPU seconds user+system, open fds) of ``pid`` and the other processes of
    its process group (its workers)."""
    samples = [_one_sample(p) for p in group_pids(pid)]
    return (sum(x[0] for x in samples), sum(x[1] for x in samples),
            sum(x[2] for x in samples))


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, every core (/proc/stat): the server,
    the clients, redis-server, PostgreSQL and anything else."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def _one_sample(pid: int) -> tuple[float, float, int]:
    rss = 0.0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                    break
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:  # a worker that has just gone
        return 0.0, 0.0, 0
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    return rss, cpu, fds


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def http_get(port: int, path: str, limit_s: float = 10.0,
                   cookie: str = "") -> tuple[int, bytes]:
    async with asyncio.timeout(limit_s):
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            extra = f"Cookie: {cookie}\r\n" if cookie else ""
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{extra}"
                         "Connection: close\r\n\r\n".encode())
            raw = await reader.read()
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    if b"transfer-encoding: chunked" in head.lower():
        body, _, _ = _dechunk(body)
    return status, body


class Server:
    """One uvicorn process (its own process group), stopped on ``stop()``."""

    def __init__(self, kind: str, app: str, env: dict[str, str], workdir: Path,
                 core: int | None, workers: int = 1) -> None:
        self.kind = kind
        self.port = free_port()
        self.log = workdir / f"server-{kind}.log"
        cmd = [*(pin(core) if workers == 1 else unpinned()), sys.executable, "-m", "uvicorn", app,
               "--factory", "--app-dir", str(BENCH_DIR), "--host", HOST,
               "--port", str(self.port), "--loop", "uvloop", "--http", "httptools",
               "--no-access-log", "--log-level", "warning", "--timeout-graceful-shutdown", "5"]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid
        self.shutdown_s: float | None = None

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited: {self.tail()}")
            try:
                status, _ = asyncio.run(http_get(self.port, "/", 2.0))
                if status == 200:
                    return
            except (OSError, TimeoutError, ValueError, IndexError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind} server not ready after {timeout} s: {self.tail()}")

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGINT (uvicorn's graceful shutdown), then SIGKILL of the group after 15 s."""
        if self.proc.poll() is None:
            t0 = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(15)
                self.shutdown_s = time.monotonic() - t0
            except subprocess.TimeoutExpired:
                print(f"# {self.kind} server did not stop within 15 s of SIGINT: killed",
                      file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def warm_up(port: int, streams: int = 20, rounds: int = 2) -> None:
    async def go() -> None:
        for r in range(rounds):
            await asyncio.gather(*(one_stream(port, f"warmup-{r}-{i}", None)
                                   for i in range(streams)))

    asyncio.run(go())


def rss_verdict(samples: list[tuple[float, float, float, int]], duration: float
                ) -> dict[str, Any]:
    """Median RSS of the second half of the phase against the first window after warm-up
    (the first ``w`` seconds, w = max(5 s, 10%), are the ramp-up and are skipped)."""
    w = max(5.0, 0.1 * duration)
    first = [s[1] for s in samples if w <= s[0] < 2 * w]
    second = [s[1] for s in samples if duration / 2 <= s[0] <= duration]
    if not first or not second:
        return {"verdict": "n/a (too few samples)"}
    m1, m2 = statistics.median(first), statistics.median(second)
    growth = m2 - m1
    steady = [(s[0], s[1]) for s in samples if w <= s[0] <= duration]
    slope = 0.0
    if len(steady) >= 3:
        slope = statistics.linear_regression([t for t, _ in steady],
                                             [r for _, r in steady]).slope * 60
    flat = growth <= max(2.0, 0.05 * m1)
    return {"window_s": [w, 2 * w], "first_window_mb": round(m1, 1),
            "second_half_mb": round(m2, 1), "growth_mb": round(growth, 1),
            "growth_pct": round(100 * growth / m1, 1), "slope_mb_per_min": round(slope, 2),
            "verdict": "flat" if flat else "GROWING"}


def run_phase(server: Server, args: argparse.Namespace, workdir: Path, phase: str,
              fraction: float, client_core: int | None, processes: list[subprocess.Popen[bytes]]
              ) -> dict[str, Any]:
    n_clients = max(1, min(args.clients, args.streams))
    per = [args.streams // n_clients + (1 if i < args.streams % n_clients else 0)
           for i in range(n_clients)]
    outs = []
    procs = []
    rss0, cpu0, fds0 = proc_sample(server.pid)
    busy0, total0 = machine_busy()
    t0 = time.monotonic()
    for i, tasks in enumerate(per):
        out = workdir / f"client-{server.kind}-{phase}-{i}.json"
        outs.append(out)
        cfg = {"port": server.port, "tasks": tasks, "duration": args.duration,
               "disconnect_fraction": fraction, "seed": args.seed * 1000 + i, "client": i,
               "tag": f"{server.kind[:2]}{phase}", "ramp": 1.5, "out": str(out)}
        proc = subprocess.Popen([*pin(client_core), sys.executable, __file__, "--_client",
                                 json.dumps(cfg)], start_new_session=True)
        procs.append(proc)
        processes.append(proc)
    samples: list[tuple[float, float, float, int]] = []
    deadline = t0 + args.duration + STREAM_TIMEOUT + 30
    next_tick = t0
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.kind} server died in phase {phase}: {server.tail()}")
        rss, cpu, fds = proc_sample(server.pid)
        samples.append((round(time.monotonic() - t0, 2), rss, cpu - cpu0, fds))
        next_tick += 1.0
        time.sleep(max(0.0, next_tick - time.monotonic()))
    wall = time.monotonic() - t0
    hung = [p.pid for p in procs if p.poll() is None]
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)
    rss1, cpu1, fds1 = proc_sample(server.pid)
    busy1, total1 = machine_busy()
    merged: dict[str, Any] = {"ttfe": [], "durations": [], "abandoned_ids": [], "failures": {},
                              "failure_examples": {}, "started": 0, "completed": 0,
                              "abandoned": 0, "events": 0, "client_cpu": 0.0}
    for out in outs:
        if not out.exists():
            merged["failures"]["client process lost"] = (
                merged["failures"].get("client process lost", 0) + 1)
            continue
        r = json.loads(out.read_text())
        for key in ("ttfe", "durations", "abandoned_ids"):
            merged[key].extend(r[key])
        for key in ("started", "completed", "abandoned", "events"):
            merged[key] += r[key]
        merged["client_cpu"] += r["cpu"]
        for reason, count in r["failures"].items():
            merged["failures"][reason] = merged["failures"].get(reason, 0) + count
            merged["failure_examples"].setdefault(reason, []).extend(
                r["failure_examples"].get(reason, [])[:3])
    if hung:
        merged["failures"]["client hung past the deadline"] = len(hung)
    cpu = cpu1 - cpu0
    streams = merged["completed"] + merged["abandoned"]
    return {
        "phase": phase, "disconnect_fraction": fraction, "concurrency": args.streams,
        "duration_s": args.duration, "wall_s": round(wall, 1),
        "started": merged["started"], "completed": merged["completed"],
        "abandoned": merged["abandoned"], "failed": sum(merged["failures"].values()),
        "failures": merged["failures"], "failure_examples": merged["failure_examples"],
        "events": merged["events"], "streams_per_s": round(streams / args.duration, 1),
        "ttfe_ms": {"p50": round(pct(merged["ttfe"], 0.5) * 1000, 1),
                    "p99": round(pct(merged["ttfe"], 0.99) * 1000, 1),
                    "max": round(max(merged["ttfe"], default=float("nan")) * 1000, 1)},
        "duration_ms": {"p50": round(pct(merged["durations"], 0.5) * 1000, 1),
                        "p99": round(pct(merged["durations"], 0.99) * 1000, 1)},
        "server_cpu_s": round(cpu, 2), "server_cpu_pct_of_core": round(100 * cpu / wall, 1),
        "server_cpu_ms_per_stream": round(1000 * cpu / streams, 3) if streams else None,
        "client_cpu_pct_of_core": round(100 * merged["client_cpu"] / wall, 1),
        "machine_busy_pct": round(100 * (busy1 - busy0) / max(total1 - total0, 1e-9), 1),
        "rss_mb": {"start": round(rss0, 1), "end": round(rss1, 1),
                   "max": round(max((s[1] for s in samples), default=rss1), 1),
                   **rss_verdict(samples, args.duration)},
        "fds": {"start": fds0, "end": fds1},
        "rss_series": [(t, round(r, 1)) for t, r, _c, _f in samples],
        "_abandoned_ids": merged["abandoned_ids"],
    }


def check_cancelled(port: int, run_ids: list[list[Any]], seed: int, shared_log: bool = False
                    ) -> dict[str, Any]:
    """GET /runs/{id} for (a sample of) the abandoned runs ([run id, events read before the
    close]); count their statuses. With a shared event log a dropped connection is not a
    Stop: the run goes on for ``limits.reconnect_grace`` (5 s), longer than the answer takes,
    so ``completed`` is right too."""
    expected = {"cancelled", "completed"} if shared_log else {"cancelled"}
    sample = run_ids if len(run_ids) <= CANCEL_SAMPLE else random.Random(seed).sample(
        run_ids, CANCEL_SAMPLE)
    statuses: dict[str, int] = {}
    by_events: dict[str, dict[str, int]] = {}
    odd: list[str] = []

    async def one(run_id: str, events: int, cookie: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            status_ = "?"
            for _ in range(20):  # a run that is still "running" gets up to ~10 s to end
                try:
                    code, body = await http_get(port, f"/runs/{run_id}", cookie=cookie)
                except (OSError, TimeoutError) as exc:
                    status_ = f"error {type(exc).__name__}"
                    break
                if code != 200:
                    status_ = f"http {code}"
                    break
                status_ = json.loads(body)["status"]
                if status_ != "running":
                    break
                await asyncio.sleep(0.5)
            statuses[status_] = statuses.get(status_, 0) + 1
            key = "closed before the first event" if events == 0 else "closed after 1+ events"
            counts = by_events.setdefault(key, {})
            counts[status_] = counts.get(status_, 0) + 1
            if status_ not in expected and len(odd) < 10:
                odd.append(f"{run_id}: {status_} (closed after {events} events)")

    async def go() -> None:
        gate = asyncio.Semaphore(20)
        async with asyncio.timeout(120):
            await asyncio.gather(*(one(r, k, c, gate) for r, k, c in sample))

    asyncio.run(go())
    return {"abandoned": len(run_ids), "checked": len(sample), "statuses": statuses,
            "statuses_by_close_point": by_events, "not_cancelled_examples": odd,
            "all_cancelled": sum(statuses.get(s, 0) for s in expected) == len(sample)}


def probe(port: int) -> dict[str, Any]:
    try:
        status, body = asyncio.run(http_get(port, "/_soak/objects", 60.0))
        return json.loads(body) if status == 200 else {"error": f"http {status}"}
    except (OSError, TimeoutError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def object_growth(objects: dict[str, Any]) -> dict[str, Any]:
    """Live tasks and objects after each phase; the types that grew from the first to the last
    probe after a phase (both taken with the server idle)."""
    keys = [k for k in objects if k != "after warm-up" and "by_type" in objects[k]]
    out: dict[str, Any] = {k: {"tasks": v.get("tasks"), "objects": v.get("objects")}
                           for k, v in objects.items()}
    if len(keys) >= 2:
        a, b = objects[keys[0]]["by_type"], objects[keys[-1]]["by_type"]
        grew = {t: b[t] - a.get(t, 0) for t in b if b[t] - a.get(t, 0) > 100}
        out["grew_between_phases"] = dict(sorted(grew.items(), key=lambda kv: -kv[1])[:10])
    return out


def run_server(kind: str, args: argparse.Namespace, workdir: Path, server_core: int | None,
               client_core: int | None, processes: list[subprocess.Popen[bytes]],
               servers: list[Server], shared: SharedServers, workers: int = 1
               ) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNSTREAM_", "RUNNABLE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["SOAK_STORE"] = args.store
    env["SOAK_DB"] = str(workdir / f"{kind}.db")
    env.update(shared.env(kind))
    app = ("soak_sse:runstream_app" if kind.startswith("runstream")
           else "soak_sse:fastapi_baseline_app" if kind == "baseline-fastapi"
           else "soak_sse:baseline_app")
    server = Server(kind, app, env, workdir, server_core, workers)
    servers.append(server)
    server.wait_ready()
    warm_up(server.port)
    time.sleep(1.0)
    rss_idle, _, _ = proc_sample(server.pid)
    out: dict[str, Any] = {"rss_after_warmup_mb": round(rss_idle, 1), "phases": {},
                           "objects": {"after warm-up": probe(server.port)}}
    phases = [("steady", 0.0)]
    if args.disconnect_fraction > 0:
        phases.append(("disconnects", args.disconnect_fraction))
    for phase, fraction in phases:
        print(f"# {kind}: phase {phase}: {args.streams} streams x {args.duration:g} s, "
              f"disconnect fraction {fraction:g} ...", file=sys.stderr, flush=True)
        result = run_phase(server, args, workdir, phase, fraction, client_core, processes)
        ids = result.pop("_abandoned_ids")
        if kind.startswith("runstream") and fraction > 0:
            time.sleep(1.0)
            result["cancelled_check"] = check_cancelled(server.port, ids, args.seed,
                                                        args.event_log != "memory")
        out["phases"][phase] = result
        time.sleep(2.0)
        out["objects"][f"after {phase}"] = probe(server.port)
    time.sleep(3.0)
    out["rss_idle_after_phases_mb"] = round(proc_sample(server.pid)[0], 1)
    out["object_probe"] = object_growth(out.pop("objects"))
    server.stop()
    out["shutdown_s"] = None if server.shutdown_s is None else round(server.shutdown_s, 2)
    out["workers"] = workers
    return out


class SharedServers:
    """The redis-server (``--event-log redis``) and PostgreSQL (``--store postgres``) the
    example shares, started here (tests/_redis_server.py, tests/_servers.py: temp dirs, free
    ports, stopped by pid); each soaked server gets a database and a key prefix of its own."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        sys.path.insert(0, str(REPO))
        self.redis: Any = None
        self.postgres: Any = None
        if args.event_log == "redis":
            from tests._redis_server import RedisServer

            self.redis = RedisServer(workdir / "redis", None, "--maxclients", "10000")
            self.redis.start()
        if args.store == "postgres":
            from tests._servers import PostgresServer

            try:
                self.postgres = PostgresServer()
                self.postgres.start()
            except BaseException:
                self.stop()
                raise

    def env(self, kind: str) -> dict[str, str]:
        name = kind.replace("-", "_")
        out = {}
        if self.redis is not None:
            out.update(SOAK_REDIS_URL=self.redis.url, SOAK_REDIS_PREFIX=f"{name}:")
        if self.postgres is not None:
            out["SOAK_DSN"] = self.postgres.create_database(name)
        return out

    def describe(self) -> str:
        parts = []
        if self.redis is not None:
            parts.append(f"event log redis ({self.redis.url})")
        if self.postgres is not None:
            parts.append(f"run log store postgres (port {self.postgres.port})")
        return ", ".join(parts) or "event log memory"

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.close()


def summary(report: dict[str, Any]) -> None:
    ours = [k for k in report["servers"] if k.startswith("runstream")]
    rs = report["servers"][ours[0]]

    def f(v: Any) -> str:
        return f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)

    cols = [(k, p) for k in (*ours, "baseline", "baseline-fastapi") if k in report["servers"]
            for p in report["servers"][k]["phases"]]
    labels = [k.replace("runstream", "rs").replace("baseline-fastapi", "fastapi")[:9] + ":"
              + p[:6] for k, p in cols]
    print(f"  {'':<34}" + "".join(f"{label:>18}" for label in labels))

    def line(label: str, get: Any) -> None:
        cells = []
        for k, p in cols:
            try:
                cells.append(f(get(report["servers"][k]["phases"][p])))
            except (KeyError, TypeError):
                cells.append("-")
        print(f"  {label:<34}" + "".join(f"{c:>18}" for c in cells))

    line("streams completed", lambda r: r["completed"])
    line("streams abandoned (disconnect)", lambda r: r["abandoned"])
    line("FAILED streams (must be 0)", lambda r: r["failed"])
    line("streams/s", lambda r: r["streams_per_s"])
    line("first event p50 ms", lambda r: r["ttfe_ms"]["p50"])
    line("first event p99 ms", lambda r: r["ttfe_ms"]["p99"])
    line("stream duration p50 ms", lambda r: r["duration_ms"]["p50"])
    line("stream duration p99 ms", lambda r: r["duration_ms"]["p99"])
    line("server CPU s (% of its core)",
         lambda r: f"{r['server_cpu_s']:.1f} ({r['server_cpu_pct_of_core']:.0f}%)")
    line("server CPU ms per stream", lambda r: r["server_cpu_ms_per_stream"])
    line("client CPU % of core 1", lambda r: r["client_cpu_pct_of_core"])
    line("machine CPU busy % (all cores)", lambda r: r.get("machine_busy_pct", "-"))
    line("RSS MB at phase start / end",
         lambda r: f"{r['rss_mb']['start']:.0f} / {r['rss_mb']['end']:.0f}")
    line("RSS MB first window -> 2nd half",
         lambda r: f"{r['rss_mb']['first_window_mb']:.0f} -> {r['rss_mb']['second_half_mb']:.0f}")
    line("RSS growth MB (%)",
         lambda r: f"{r['rss_mb']['growth_mb']:+.1f} ({r['rss_mb']['growth_pct']:+.1f}%)")
    line("RSS slope MB/min", lambda r: r["rss_mb"]["slope_mb_per_min"])
    line("RSS verdict", lambda r: r["rss_mb"]["verdict"])
    line("open fds start / end", lambda r: f"{r['fds']['start']} / {r['fds']['end']}")
    for phase, result in [(p, r) for k in ours
                          for p, r in report["servers"][k]["phases"].items()]:
        check = result.get("cancelled_check")
        if check:
            print(f"  abandoned runs ({phase}): {check['abandoned']:,}, checked "
                  f"{check['checked']}, statuses {check['statuses']} -> "
                  f"{'as expected' if check['all_cancelled'] else 'NOT ALL CANCELLED'}")
            for key, counts in check["statuses_by_close_point"].items():
                print(f"    {key}: {counts}")
            for example in check["not_cancelled_examples"][:3]:
                print(f"    e.g. {example}")
        for reason, examples in result["failure_examples"].items():
            print(f"  failure ({phase}) {reason}: {examples[:2]}")
    for kind, data in report["servers"].items():
        print(f"  {kind}: RSS after warm-up {data['rss_after_warmup_mb']} MB, idle after the "
              f"phases {data['rss_idle_after_phases_mb']} MB, shutdown {data['shutdown_s']} s")
        probes = data["object_probe"]
        print("    live tasks / objects (idle): " + ", ".join(
            f"{k} {v['tasks']} / {v['objects']:,}" for k, v in probes.items()
            if isinstance(v, dict) and v.get("objects") is not None))
        if "grew_between_phases" in probes:
            print(f"    types grown between the phases (>100): {probes['grew_between_phases']}")
    if len(ours) > 1:
        compare_workers(report, ours)
    nan = float("nan")  # a phase too short for an RSS verdict
    for name in ("baseline", "baseline-fastapi"):
        base = report["servers"].get(name)
        if not base:
            continue
        for phase in rs["phases"]:
            if phase not in base["phases"]:
                continue
            a, b = rs["phases"][phase], base["phases"][phase]
            rss = (a["rss_mb"].get("second_half_mb", nan)
                   / b["rss_mb"].get("second_half_mb", nan))
            print(f"  ratio runstream/{name} ({phase}): first event p99 "
                  f"{a['ttfe_ms']['p99'] / b['ttfe_ms']['p99']:.2f}x, p50 "
                  f"{a['ttfe_ms']['p50'] / b['ttfe_ms']['p50']:.2f}x; duration p99 "
                  f"{a['duration_ms']['p99'] / b['duration_ms']['p99']:.2f}x; RSS (2nd half) "
                  f"{rss:.2f}x; "
                  f"server CPU per stream "
                  f"{a['server_cpu_ms_per_stream'] / b['server_cpu_ms_per_stream']:.2f}x")


def compare_workers(report: dict[str, Any], kinds: list[str]) -> None:
    """Streams/s and p99 first event of each worker count against the first."""
    first = report["servers"][kinds[0]]
    for kind in kinds[1:]:
        other = report["servers"][kind]
        for phase, a in first["phases"].items():
            b = other["phases"].get(phase)
            if b is None:
                continue
            print(f"  ratio {other['workers']} workers / {first['workers']} ({phase}): "
                  f"streams/s {b['streams_per_s'] / a['streams_per_s']:.2f}x "
                  f"(target for 2 / 1: >= 1.7x); first event p99 "
                  f"{b['ttfe_ms']['p99'] / a['ttfe_ms']['p99']:.2f}x; server CPU per stream "
                  f"{b['server_cpu_ms_per_stream'] / a['server_cpu_ms_per_stream']:.2f}x")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--_client":
        return _run_client(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=None,
                        help="concurrent streams (default 1000; --quick: 200)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per phase (default 60; --quick: 15)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 streams, 15 s")
    parser.add_argument("--disconnect-fraction", type=float, default=0.3,
                        help="phase 2: share of streams abandoned mid-stream (0: skip phase 2)")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--store", choices=("sqlite", "memory", "postgres"), default="sqlite",
                        help="run log store of the example server (default sqlite; postgres: "
                             "a PostgreSQL started here)")
    parser.add_argument("--event-log", choices=("memory", "redis"), default="memory",
                        help="event log of the example (redis: a redis-server started here)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn --workers")
    parser.add_argument("--compare-workers", default=None, metavar="N,M",
                        help="soak once per worker count (e.g. 1,2), no baseline; ratios")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--fastapi-baseline", action="store_true",
                        help="also soak the bare app's chat as a FastAPI endpoint "
                             "(fastapi_baseline_app): the ratios against it leave out what "
                             "FastAPI itself costs the example")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.streams = args.streams or (200 if args.quick else 1000)
    args.duration = args.duration or (15.0 if args.quick else 60.0)
    if not 0 <= args.disconnect_fraction <= 1:
        parser.error("--disconnect-fraction must be between 0 and 1")
    try:
        counts = ([int(n) for n in args.compare_workers.split(",")] if args.compare_workers
                  else [args.workers])
    except ValueError:
        parser.error(f"--compare-workers takes worker counts such as 1,2; got "
                     f"{args.compare_workers!r}")
    if any(n < 1 for n in counts):
        parser.error("worker counts must be at least 1")

    cores = sorted(os.sched_getaffinity(0))
    ALL_CORES[:] = cores
    from _common import header

    header("soak_sse: concurrent SSE chat streams against the FastAPI example (issue 6)")
    server_core = client_core = None
    if shutil.which("taskset") and len(cores) >= 2:
        server_core, client_core = cores[0], cores[1]
        os.sched_setaffinity(0, {client_core})  # the conductor stays off the server's core
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.streams + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    print(f"# {args.streams:,} concurrent streams x {args.duration:g} s per phase, "
          f"{args.clients} client processes (core {client_core}), server on core "
          f"{server_core} (1 worker; more: not pinned); uvicorn workers "
          f"{'/'.join(map(str, counts))}, uvloop + httptools; run log store {args.store}; "
          f"event log {args.event_log}; phase 2 disconnect fraction "
          f"{args.disconnect_fraction:g}")
    workdir = Path(tempfile.mkdtemp(prefix="runstream-soak-"))
    processes: list[subprocess.Popen[bytes]] = []
    servers: list[Server] = []
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "streams": args.streams,
                              "duration_s": args.duration, "clients": args.clients,
                              "store": args.store, "event_log": args.event_log,
                              "workers": counts, "cores": len(cores),
                              "load_avg_start": os.getloadavg()[0], "servers": {}}
    shared: SharedServers | None = None
    try:
        # redis-server and PostgreSQL on every core, not on the clients' (see unpinned).
        os.sched_setaffinity(0, cores)
        try:
            shared = SharedServers(args, workdir)
        finally:
            if client_core is not None:
                os.sched_setaffinity(0, {client_core})
        print(f"# {shared.describe()}")
        kinds = ([(f"runstream-{n}w", n) for n in counts] if len(counts) > 1
                 else [("runstream", counts[0])])
        if not args.no_baseline and len(counts) == 1:
            kinds.append(("baseline", 1))
            if args.fastapi_baseline:
                kinds.append(("baseline-fastapi", 1))
        for kind, workers in kinds:
            report["servers"][kind] = run_server(kind, args, workdir, server_core, client_core,
                                                 processes, servers, shared, workers)
    except KeyboardInterrupt:
        print("# interrupted", file=sys.stderr)
        return 130
    finally:
        for proc in processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for server in servers:
            server.stop()
        if shared is not None:
            shared.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report["load_avg_end"] = os.getloadavg()[0]
    summary(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"# details: {args.out}")
    ok = True
    for data in report["servers"].values():
        for result in data["phases"].values():
            ok &= result["failed"] == 0 and result["rss_mb"].get("verdict") == "flat"
            check = result.get("cancelled_check")
            ok &= check is None or check["all_cancelled"]
    print(f"# verdict: {'PASS' if ok else 'FAIL'} (failed = 0, RSS flat, abandoned runs "
          "cancelled)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
