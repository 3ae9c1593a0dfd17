"""Issue 12 end to end: uvicorn processes of the example (examples/fastapi_llm) sharing one real
Redis (``event_log: redis``) and one real PostgreSQL (``run_log_store: postgres``), with the
example's owner scoping on (the session cookie is sent to every process).

Resume on another process, cancel from another process, one run log everywhere; 200 chats on
``--workers 4`` that each reconnect once; ``max_concurrent_runs`` shared by three processes (and
freed by a SIGKILL); Redis restarted and PostgreSQL stopped mid-run; Redis unreachable at start.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._cluster import Server, example_cluster, start_example
from tests._redis_server import RedisServer, free_port, running_redis
from tests._servers import PostgresServer, postgres_server

pytestmark = pytest.mark.slow

TIMEOUT = httpx.Timeout(30.0)
COOKIE = "runstream_session"
TERMINAL = ("run.completed", "run.failed", "run.cancelled")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("cluster-redis")) as server:
        yield server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
         pg_server: PostgresServer) -> Iterator[list[Server]]:
    """Three example processes A, B, C sharing the session's Redis and PostgreSQL (each
    spends seconds importing the app, so the tests share them)."""
    directory = tmp_path_factory.mktemp("trio")
    config = write_config(directory, redis_server.url, pg_server)
    with example_cluster(directory, config, 3) as servers:
        yield servers


def write_config(directory: Path, redis_url: str, pg: PostgresServer, **limits: Any) -> Path:
    """A config for processes that share ``redis_url`` and a fresh database of ``pg`` (a key
    prefix and a database of its own per test: the tests share the servers)."""
    name = "t" + uuid.uuid4().hex[:12]
    config = {
        "event_log": {"type": "redis", "url": redis_url, "key_prefix": f"{name}:",
                      "slot_lease": limits.pop("slot_lease", 15)},
        "run_log_store": {"type": "postgres", "dsn": pg.create_database(name)},
        "limits": limits,
    }
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


class Event:
    """One SSE event as read off the wire."""

    def __init__(self, name: str, id_: str | None, data: str) -> None:
        self.event, self.id, self.data = name, id_, data

    def json(self) -> Any:
        return json.loads(self.data)

    def __repr__(self) -> str:
        return f"Event({self.event!r}, {self.id!r}, {self.data[:80]!r})"


async def events_of(response: httpx.Response) -> AsyncIterator[Event]:
    """The events of a streaming response (enough of WHATWG's rules for our server)."""
    name, id_, data = "message", None, []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield Event(name, id_, "\n".join(data))
            name, id_, data = "message", None, []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "id":
            id_ = value
        elif field == "data":
            data.append(value)


def session_of(server: Server) -> dict[str, str]:
    """A new session's cookie, from ``GET /ui``."""
    response = httpx.get(f"{server.url}/ui", timeout=TIMEOUT)
    response.raise_for_status()
    return {COOKIE: response.cookies[COOKIE]}


@asynccontextmanager
async def chat(client: httpx.AsyncClient, server: Server, prompt: str
               ) -> AsyncIterator[tuple[str, AsyncIterator[Event]]]:
    """``POST /chat`` on ``server``: the run id and the events; the connection is closed (a
    drop, if the stream is not over) on leaving."""
    async with client.stream("POST", f"{server.url}/chat", json={"prompt": prompt}) as response:
        assert response.status_code == 200, await response.aread()
        yield response.headers["x-run-id"], events_of(response)


async def replay(client: httpx.AsyncClient, server: Server, run_id: str,
                 last_event_id: str | None) -> list[Event]:
    """``GET /runs/{id}/events`` on ``server`` from ``last_event_id``, read to the end."""
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    async with client.stream("GET", f"{server.url}/runs/{run_id}/events",
                             headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        return [event async for event in events_of(response)]


def check_answer(events: list[Event], prompt: str) -> None:
    """``events`` are a whole answer: ids rising (no duplicate; the run's records that are not
    streamed leave holes in them), both statuses, the chunks add up to ``full_text`` (no gap),
    which quotes ``prompt`` (no cross-talk), and the stream ends with run.completed."""
    ids = [int(event.id) for event in events if event.id is not None]
    assert ids == sorted(set(ids)), ids
    assert events[-1].event == "run.completed", events[-3:]
    data = [event.json() for event in events if event.event == "message"]
    assert [d["status"] for d in data if d["type"] == "status"] == ["thinking", "generating"]
    text = "".join(d["text"] for d in data if d["type"] == "chunk")
    assert data[-1]["type"] == "done"
    assert text == data[-1]["full_text"]
    assert f"'{prompt}'" in text


# --- 1. three processes: resume on B, cancel from C, one run log ------------------------------


async def test_three_processes_share_runs(trio: list[Server]) -> None:
    a, b, c = trio
    cookies = session_of(a)
    async with httpx.AsyncClient(timeout=TIMEOUT, cookies=cookies) as client:
        # Resume on B what A streamed: exactly the missing events, then the end.
        prompt = "resume me on another process"
        first: list[Event] = []
        async with chat(client, a, prompt) as (run_id, events):
            async for event in events:
                first.append(event)
                if len(first) == 5:
                    break
        assert first[-1].id is not None
        rest = await replay(client, b, run_id, first[-1].id)
        check_answer(first + rest, prompt)
        whole = await replay(client, c, run_id, None)
        assert [(e.event, e.id, e.data) for e in first + rest] == \
            [(e.event, e.id, e.data) for e in whole]

        # Cancel on C a run that streams from A.
        async with chat(client, a, "stop me from elsewhere") as (cancelled_id, events):
            async for event in events:
                if event.event == "message" and event.json()["type"] == "chunk":
                    break
            started = time.perf_counter()
            answer = await client.post(f"{c.url}/runs/{cancelled_id}/cancel")
            assert answer.status_code in (200, 202), answer.text
            tail = [event async for event in events]
            latency = time.perf_counter() - started
        assert tail[-1].event == "run.cancelled", tail[-3:]
        print(f"\ncancel on C -> run.cancelled on A's client: {latency * 1000:.1f} ms")

        # One run log, on every process.
        for run in (run_id, cancelled_id):
            logs = [(await client.get(f"{s.url}/runs/{run}")).json() for s in (a, b, c)]
            assert logs[0] == logs[1] == logs[2]
        assert logs[0]["status"] == "cancelled", logs[0]

    # Another session sees none of it, on any process.
    async with httpx.AsyncClient(timeout=TIMEOUT, cookies=session_of(b)) as other:
        for server in (a, b, c):
            for run in (run_id, cancelled_id):
                assert (await other.get(f"{server.url}/runs/{run}")).status_code == 404
                assert (await other.get(
                    f"{server.url}/runs/{run}/events")).status_code == 404
                assert (await other.post(
                    f"{server.url}/runs/{run}/cancel")).status_code == 404


# --- 2. faults ----------------------------------------------------------------------------------


async def test_redis_restarted_mid_run(trio: list[Server], redis_server: RedisServer) -> None:
    a, b, _ = trio
    redis = redis_server
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, cookies=session_of(a)) as client:
            prompt = "keep streaming while redis is away"
            seen: list[Event] = []
            async with chat(client, a, prompt) as (run_id, events):
                async for event in events:
                    seen.append(event)
                    if event.event == "message" and event.json()["type"] == "chunk":
                        break
                redis.stop()
                async for event in events:
                    seen.append(event)
                    if event.event == "run.warning":
                        break
                # While Redis is down: a replay on B is a 503 with Retry-After, at once.
                down = await client.get(f"{b.url}/runs/{run_id}/events",
                                        headers={"Last-Event-ID": seen[-1].id or "0"})
                assert down.status_code == 503, down.text
                assert int(down.headers["retry-after"]) >= 1
                seen += [event async for event in events]
            warnings = [e for e in seen if e.event == "run.warning"]
            assert warnings and "replay" in warnings[0].data, seen
            check_answer([e for e in seen if e.event != "run.warning"], prompt)

            # Redis back (empty): new chats and their replays work, on both processes.
            redis.start()
            # What the restarted Redis lost stays lost, said plainly; the run log has the run.
            gone = await client.get(f"{b.url}/runs/{run_id}/events")
            assert gone.status_code == 410, gone.text
            assert (await client.get(f"{b.url}/runs/{run_id}")).json()["status"] == "completed"
            for server, other in ((a, b), (b, a)):
                prompt = f"after the restart, on {server.port}"
                async with chat(client, server, prompt) as (new_id, events):
                    head = [await anext(events) for _ in range(3)]
                check_answer(head + await replay(client, other, new_id, head[-1].id), prompt)
    finally:
        if redis.process is None:
            redis.start()


async def test_postgres_stopped_mid_run(trio: list[Server], pg_server: PostgresServer) -> None:
    a = trio[0]
    async with httpx.AsyncClient(timeout=TIMEOUT, cookies=session_of(a)) as client:
        prompt = "finish while postgres is away"
        try:
            async with chat(client, a, prompt) as (run_id, events):
                seen = [await anext(events) for _ in range(3)]
                pg_server.stop()
                seen += [event async for event in events]
            check_answer([e for e in seen if e.event != "run.warning"], prompt)
            # The run log cannot be read: a clear 5xx, not a hang.
            started = time.monotonic()
            down = await client.get(f"{a.url}/runs/{run_id}")
            assert down.status_code == 503, down.text
            assert int(down.headers["retry-after"]) >= 1
            assert "run log store is unavailable" in down.json()["detail"]
            assert time.monotonic() - started < 15
            # A chat started meanwhile streams too (its run log is written once PG is back).
            prompt = "start while postgres is away"
            async with chat(client, a, prompt) as (late_id, events):
                late = [event async for event in events]
            check_answer([e for e in late if e.event != "run.warning"], prompt)
            assert "run log store" in " ".join(late[-1].json()["warnings"])
        finally:
            if pg_server.proc is None:
                pg_server.start()
        # Back: the runs' final records land.
        deadline = time.monotonic() + 20
        for run in (run_id, late_id):
            while True:
                answer = await client.get(f"{a.url}/runs/{run}")
                if answer.status_code == 200 and answer.json()["status"] == "completed":
                    break
                assert time.monotonic() < deadline, answer.text
                await asyncio.sleep(0.2)


# --- 3. --workers 4: 200 chats, each reconnecting once ----------------------------------------


async def test_workers_resume_every_stream(tmp_path: Path, redis_server: RedisServer,
                                           pg_server: PostgresServer) -> None:
    config = write_config(tmp_path, redis_server.url, pg_server)
    server = start_example(tmp_path, config, workers=4, delay_scale=0.5, timeout=60)
    chats = 200
    rng = random.Random(12)
    limits = httpx.Limits(max_connections=chats * 2, max_keepalive_connections=0)
    try:
        cookies = session_of(server)
        async with httpx.AsyncClient(timeout=TIMEOUT, cookies=cookies, limits=limits) as client:

            async def one(index: int) -> None:
                prompt = f"chat number {index}"
                drop_after = rng.randint(1, 20)  # of about 30 events
                first: list[Event] = []
                async with chat(client, server, prompt) as (run_id, events):
                    async for event in events:
                        first.append(event)
                        if len(first) == drop_after:
                            break
                # A new connection: the kernel gives it to any of the four workers.
                check_answer(first + await replay(client, server, run_id, first[-1].id), prompt)

            await asyncio.gather(*(one(index) for index in range(chats)))
    finally:
        server.stop()


# --- 4. max_concurrent_runs shared by three processes -----------------------------------------


async def test_shared_run_limit(tmp_path: Path, redis_server: RedisServer,
                                pg_server: PostgresServer) -> None:
    limit, lease = 50, 1.0
    config = write_config(tmp_path, redis_server.url, pg_server, max_concurrent_runs=limit,
                          slot_lease=lease)
    # Slow runs (about 30 s each): none ends by itself while the test holds them.
    with example_cluster(tmp_path, config, 3, delay_scale=20) as servers:
        cookies = session_of(servers[0])
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=TIMEOUT, cookies=cookies, limits=limits) as client:
            opened: dict[int, list[httpx.Response]] = {0: [], 1: [], 2: []}
            refused: list[httpx.Response] = []

            async def one(index: int) -> None:
                where = index % 3
                request = client.build_request("POST", f"{servers[where].url}/chat",
                                               json={"prompt": f"hold {index}"})
                response = await client.send(request, stream=True)
                if response.status_code == 200:
                    await anext(response.aiter_lines())  # the run has started
                    opened[where].append(response)
                else:
                    await response.aread()
                    await response.aclose()
                    refused.append(response)

            try:
                await asyncio.gather(*(one(index) for index in range(limit + 16)))
                assert sum(len(held) for held in opened.values()) == limit
                assert len(refused) == 16
                for response in refused:
                    assert response.status_code == 503, response.text
                    assert int(response.headers["retry-after"]) >= 1

                # Kill C: the slots of its runs free themselves within the lease.
                servers[2].kill()
                servers[2].proc.wait(timeout=10)
                killed_at = time.monotonic()
                freed = len(opened[2])
                assert freed > 0
                for response in opened[2]:
                    await response.aclose()
                taken = 0
                while taken < freed:
                    # Polls the limit (a 503 answers at once): the slots free at the lease's end.
                    assert time.monotonic() - killed_at < lease + 5, f"{taken} of {freed} slots"
                    one_more = await client.send(client.build_request(
                        "POST", f"{servers[0].url}/chat", json={"prompt": "after the kill"}),
                        stream=True)
                    if one_more.status_code == 200:
                        taken += 1
                        opened[0].append(one_more)
                    else:
                        assert one_more.status_code == 503
                        await one_more.aclose()
                        await asyncio.sleep(0.05)
                print(f"\n{freed} slots of a SIGKILLed process free again after "
                      f"{time.monotonic() - killed_at:.2f} s (slot_lease {lease} s)")
                # And not one more than the limit.
                over = await client.post(f"{servers[1].url}/chat", json={"prompt": "one more"})
                assert over.status_code == 503
            finally:
                for held in opened.values():
                    for response in held:
                        await response.aclose()


def test_redis_unreachable_at_start(tmp_path: Path, pg_server: PostgresServer) -> None:
    url = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"
    config = write_config(tmp_path, url, pg_server)
    with pytest.raises(RuntimeError, match="the example exited") as failed:
        start_example(tmp_path, config)
    message = str(failed.value)
    assert f"127.0.0.1:{url.rsplit(':', 1)[1]}" in message
    assert "hunter2secret" not in message
    # One clear line (the StartupErrors middleware), not a traceback.
    assert "Traceback" not in message
    assert "EventLogError: event log: cannot connect" in message
    print(message[-600:])
