"""Runs belong to their owners: the runs router serves a run only to the caller ``authorize``
names as its owner, and answers 404 to everyone else exactly as for an unknown run. Secret
parameters never reach the wire. Real uvicorn servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from runstream import AsyncPipeline, ComponentConfig, Config, Pipeline, Runtime, Secret
from runstream_async_python import AsyncPythonTask
from runstream_sse import ANONYMOUS, SSE

from tests._server import serve

TIMEOUT = httpx.Timeout(30.0)
KEY = "sk-test-5b0e91c2d7a4f368"


async def answer(prompt: str, hold: bool = False) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "chunk", "text": prompt}
    if hold:  # stay live until the client goes away
        await asyncio.Event().wait()
    yield {"type": "done", "full_text": prompt}


async def keyed(api_key: str) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "chunk", "text": f"a key of {len(api_key)} characters"}
    raise PermissionError(f"the provider rejected {api_key}")


CHAT = Pipeline("chat", [AsyncPythonTask(name="llm", function=answer)])
KEYED = AsyncPipeline("keyed", [AsyncPythonTask(name="llm", function=keyed)])


def who(request: Request) -> str | None:
    """The caller's identity: a header, for the test (an app checks a session or a token)."""
    return request.headers.get("x-user")


def make_app(config: Config, *, authorize: bool) -> FastAPI:
    runtime = Runtime(config)
    sse = SSE(runtime, authorize=who if authorize else None)
    app = FastAPI(lifespan=sse.lifespan)
    app.include_router(sse.router())

    @app.get("/chat")
    async def chat(request: Request, prompt: str = "hi", hold: bool = False) -> Response:
        owner = who(request) if authorize else ANONYMOUS
        return sse.response(CHAT, {"prompt": prompt, "hold": hold}, owner=owner)

    @app.get("/resume/{run_id}")
    async def resume(request: Request, run_id: str) -> Response:
        return sse.response(CHAT, {"prompt": "new"}, run_id=run_id, owner=who(request))

    @app.get("/keyed")
    async def keyed_chat(request: Request) -> Response:
        return sse.response(KEYED, {"api_key": Secret(KEY)}, owner=who(request),
                            lifecycle=True)

    return app


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("owners") / "runs.db"


def sqlite(database: Path) -> Config:
    return Config(run_log_store=ComponentConfig(type="sqlite", path=str(database)))


@pytest.fixture(scope="module")
def authorized(database: Path) -> Iterator[str]:
    with serve(make_app(sqlite(database), authorize=True)) as url:
        yield url


@pytest.fixture(scope="module")
def open_router(database: Path) -> Iterator[str]:
    with serve(make_app(sqlite(database), authorize=False)) as url:
        yield url


def as_user(base: str, user: str | None) -> httpx.Client:
    headers = {} if user is None else {"x-user": user}
    return httpx.Client(base_url=base, timeout=TIMEOUT, headers=headers)


def start(client: httpx.Client, **params: Any) -> tuple[str, str]:
    response = client.get("/chat", params=params)
    assert response.status_code == 200, response.text
    assert "event: run.completed" in response.text
    return response.headers["x-run-id"], response.text


def absent(client: httpx.Client, path: str, run_id: str) -> tuple[int, Any]:
    """What ``path`` answers for ``run_id`` and, for comparison, for an id nobody used."""
    unknown = "20200101-000000-" + "0" * 32
    got = client.get(path.format(run_id))
    expected = client.get(path.format(unknown))
    assert expected.status_code == 404
    assert got.status_code == 404, got.text
    assert got.json() == json.loads(expected.text.replace(unknown, run_id))
    return got.status_code, got.json()


def test_a_run_is_served_to_its_owner_only(authorized: str) -> None:
    with as_user(authorized, "alice") as alice, as_user(authorized, "bob") as bob, \
            as_user(authorized, None) as nobody:
        run_id, _ = start(alice, prompt="alice's secret plan")
        log = alice.get(f"/runs/{run_id}")
        assert log.status_code == 200 and log.json()["owner"] == "alice"
        events = alice.get(f"/runs/{run_id}/events")
        assert events.status_code == 200 and "alice's secret plan" in events.text

        for other in (bob, nobody):
            for path in ("/runs/{}", "/runs/{}/events"):
                absent(other, path, run_id)
            head = other.head(f"/runs/{run_id}/events")
            assert head.status_code == 404


def test_a_live_run_is_hidden_from_other_callers(authorized: str) -> None:
    with as_user(authorized, "alice") as alice, as_user(authorized, "bob") as bob, \
            alice.stream("GET", "/chat", params={"prompt": "live", "hold": True}) as stream:
        run_id = stream.headers["x-run-id"]
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("data:")) == (
            'data: {"type": "chunk", "text": "live"}')
        # The run is live: its events are in the replay buffer, its record says running.
        for path in ("/runs/{}", "/runs/{}/events"):
            absent(bob, path, run_id)
        assert alice.get(f"/runs/{run_id}").json()["status"] == "running"
        with alice.stream("GET", f"/runs/{run_id}/events") as replay:
            assert replay.status_code == 200
            assert any(line == 'data: {"type": "chunk", "text": "live"}'
                       for line in replay.iter_lines() if line.startswith("data:"))
            # (it would follow the live run; leaving is enough)


def test_runs_without_an_owner_are_nobodys(authorized: str, open_router: str,
                                           database: Path) -> None:
    # A CLI or batch run in the same database: no owner.
    log = CHAT.execute({"prompt": "batch job"}, config=sqlite(database))
    assert log.owner is None
    for base in (authorized, open_router):
        for user in ("alice", None, ANONYMOUS):
            with as_user(base, user) as client:
                for path in ("/runs/{}", "/runs/{}/events"):
                    absent(client, path, log.run_id)


def test_without_authorize_only_anonymous_runs_are_served(authorized: str, open_router: str
                                                          ) -> None:
    # The README's curl flow: POST a chat, GET its run, no credentials anywhere.
    with as_user(open_router, None) as client:
        run_id, _ = start(client, prompt="public")
        log = client.get(f"/runs/{run_id}")
        assert log.status_code == 200 and log.json()["owner"] == ANONYMOUS
        assert client.get(f"/runs/{run_id}/events").status_code == 200
    # A run that has an owner is not served by a router that cannot tell callers apart.
    with as_user(authorized, "alice") as alice:
        owned, _ = start(alice, prompt="mine")
    with as_user(open_router, "alice") as client:
        for path in ("/runs/{}", "/runs/{}/events"):
            absent(client, path, owned)


def test_an_authorize_that_returns_none_is_served_nothing(authorized: str) -> None:
    with as_user(authorized, None) as nobody:
        run_id, _ = start(nobody, prompt="who am I")  # owner=None: no owner
        absent(nobody, "/runs/{}", run_id)


def test_resuming_another_owners_run_finds_nothing(authorized: str) -> None:
    with as_user(authorized, "alice") as alice, as_user(authorized, "bob") as bob:
        run_id, _ = start(alice, prompt="resumable")
        stolen = bob.get(f"/resume/{run_id}", headers={"last-event-id": "0"})
        assert stolen.status_code == 204 and stolen.text == ""
        mine = alice.get(f"/resume/{run_id}", headers={"last-event-id": "0"})
        assert mine.status_code == 200 and "resumable" in mine.text


def test_secret_parameters_never_reach_the_wire(authorized: str, database: Path) -> None:
    with as_user(authorized, "alice") as alice:
        stream = alice.get("/keyed")
        run_id = stream.headers["x-run-id"]
        log = alice.get(f"/runs/{run_id}")
        replay = alice.get(f"/runs/{run_id}/events", params={"lifecycle": "true"})
    wire = stream.content + log.content + replay.content
    # The task had the key; the failure's message mentions it, masked.
    assert f"a key of {len(KEY)} characters".encode() in stream.content
    assert b"the provider rejected **********" in stream.content
    assert log.json()["parameters"] == {"api_key": "**********"}
    assert KEY.encode() not in wire
    stored = b"".join(p.read_bytes() for p in database.parent.iterdir() if p.is_file())
    assert run_id.encode() in stored and KEY.encode() not in stored
