"""The example's runs belong to the browser that started them (examples/fastapi_llm/sessions.py):
an anonymous session cookie owns each run, and /runs/{id} and /runs/{id}/events answer 404 to a
client without that cookie. Real uvicorn on 127.0.0.1; Chromium's EventSource for the replay."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright
from runstream import ComponentConfig, Config

from examples.fastapi_llm.main import create_app
from examples.fastapi_llm.sessions import COOKIE
from tests._mock_llm_plan import plan_events
from tests._server import serve
from tests.test_example_browser import CHROMIUM, CHROMIUM_ARGS

TIMEOUT = httpx.Timeout(30.0)
PROMPT = "my private question"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = create_app(config=Config(run_log_store=ComponentConfig(type="memory")),
                     delay_scale=0)
    with serve(app) as url:
        yield url


def chat(client: httpx.Client) -> str:
    response = client.post("/chat", json={"prompt": PROMPT})
    assert response.status_code == 200 and "event: run.completed" in response.text
    return response.headers["x-run-id"]


def test_another_client_gets_404_for_your_run(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as mine, \
            httpx.Client(base_url=base_url, timeout=TIMEOUT) as no_cookie, \
            httpx.Client(base_url=base_url, timeout=TIMEOUT) as other_session:
        run_id = chat(mine)
        assert COOKIE in mine.cookies
        assert other_session.get("/ui").status_code == 200  # a session of its own
        assert other_session.cookies[COOKIE] != mine.cookies[COOKIE]

        log = mine.get(f"/runs/{run_id}")
        assert log.status_code == 200 and log.json()["parameters"] == {"prompt": PROMPT}
        # The run log names a hash of the session, not the cookie that would open it.
        assert log.json()["owner"].startswith("session:")
        assert mine.cookies[COOKIE] not in log.text
        replay = mine.get(f"/runs/{run_id}/events")
        assert replay.status_code == 200 and PROMPT in replay.text

        unknown = "20200101-000000-" + "0" * 32
        for client in (no_cookie, other_session):
            for path in (f"/runs/{run_id}", f"/runs/{run_id}/events"):
                got = client.get(path)
                expected = client.get(path.replace(run_id, unknown))
                assert got.status_code == expected.status_code == 404
                assert got.json() == {"detail": expected.json()["detail"].replace(unknown,
                                                                                  run_id)}
                assert PROMPT not in got.text


def test_the_session_cookie_is_random_httponly_and_samesite(base_url: str) -> None:
    values = []
    for _ in range(20):
        with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
            first = client.get("/ui")
            header = first.headers["set-cookie"]
            attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
            assert {"httponly", "samesite", "path"} <= attributes
            assert "samesite=lax" in header.lower()
            assert "secure" not in attributes  # plain http on 127.0.0.1; https adds Secure
            values.append(client.cookies[COOKIE])
            # Known from now on: not set again, and its chats are its runs.
            assert "set-cookie" not in client.get("/ui").headers
            chat(client)
    # 43 URL-safe characters = 256 random bits (>= 128), never the same twice.
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", v) for v in values)
    assert len(set(values)) == len(values)


def test_a_chat_without_a_cookie_starts_a_session(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        run_id = chat(client)  # no /ui first: curl, say
        assert COOKIE in client.cookies
        assert client.get(f"/runs/{run_id}").status_code == 200
    # A forged cookie is a session of its own only if well-formed; garbage is no session.
    with httpx.Client(base_url=base_url, timeout=TIMEOUT, cookies={COOKIE: "x"}) as forged:
        assert forged.get(f"/runs/{run_id}").status_code == 404


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


#: Replays a run with EventSource (which cannot send headers: the cookie goes along).
REPLAY = """(runId) => new Promise((resolve) => {
    const got = [];
    const source = new EventSource(`/runs/${encodeURIComponent(runId)}/events`);
    source.onmessage = (ev) => got.push(JSON.parse(ev.data));
    source.addEventListener("run.completed", () => { source.close(); resolve(got); });
    source.onerror = () => {
        if (source.readyState === EventSource.CLOSED) resolve({failed: got.length});
    };
})"""


def test_event_source_replays_your_runs_with_the_cookie(browser: Browser,
                                                        base_url: str) -> None:
    mine = browser.new_context()
    theirs = browser.new_context()
    try:
        page = mine.new_page()
        page.goto(base_url + "/ui")  # sets the session cookie (HttpOnly: no script sees it)
        assert page.evaluate("document.cookie") == ""
        run_id = page.evaluate("""async (prompt) => {
            const r = await fetch("/chat", {method: "POST", body: JSON.stringify({prompt}),
                                            headers: {"Content-Type": "application/json"}});
            await r.text();
            return r.headers.get("X-Run-Id");
        }""", PROMPT)
        replayed: Any = page.evaluate(REPLAY, run_id)
        assert replayed == plan_events(PROMPT)

        other = theirs.new_page()
        other.goto(base_url + "/ui")
        assert other.evaluate(REPLAY, run_id) == {"failed": 0}  # 404: EventSource gives up
    finally:
        mine.close()
        theirs.close()
