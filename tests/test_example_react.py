"""The React chat page (examples/react_chat, ``useChat`` on ``POST /api/chat``) in Chromium:
two turns, Stop mid-answer (the run is cancelled, checked through ``/runs/{id}/events``), a
reload mid-answer (the answer goes on), a failing run's error. The page is installed and
built at test time (npm, Vite) into its git-ignored ``node_modules/`` and ``dist/``, once per
session."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from runstream import ComponentConfig, Config

from examples.fastapi_llm import main
from tests._mock_llm_plan import plan_answer
from tests._npm import npm_installed
from tests._server import serve

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "examples" / "react_chat"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT_MS = 20_000


@pytest.fixture(scope="session")
def react_build() -> Path:
    """``npm install`` (skipped when the pinned versions are there) and ``npm run build``."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("the React page needs Node 20 and npm on PATH")
    wanted = json.loads((APP_DIR / "package.json").read_text())
    pins = {**wanted["dependencies"], **wanted["devDependencies"]}

    steps = [] if npm_installed(APP_DIR, pins) else [
        [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"]]
    for command in [*steps, [npm, "run", "build", "--silent"]]:
        done = subprocess.run(command, cwd=APP_DIR, capture_output=True, text=True,
                              timeout=300, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command[1:])} failed in {APP_DIR} (exit "
                        f"{done.returncode}):\n{done.stdout}\n{done.stderr}")
    assert (APP_DIR / "dist" / "index.html").exists()
    return APP_DIR / "dist"


@pytest.fixture(scope="module")
def base_url(react_build: Path) -> Iterator[str]:
    # 150 ms a word: an answer takes a few seconds, time to press Stop or reload mid-answer.
    app = main.create_app(config=Config(run_log_store=ComponentConfig(type="memory")),
                          delay_scale=3)
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(base_url + "/app/")
    try:
        yield page
    finally:
        context.close()


def send(page: Page, prompt: str) -> None:
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("send").click()


def answers(page: Page) -> list[str]:
    return page.get_by_test_id("message-assistant").all_text_contents()


def streaming_run(page: Page, index: int) -> str:
    """Wait until answer ``index`` has some text; its run id."""
    answer = page.get_by_test_id("message-assistant").nth(index)
    expect(answer).to_contain_text("I received")
    message_id = answer.get_attribute("data-message-id") or ""
    assert message_id.startswith("msg-")
    return message_id[4:]


def run_end(page: Page, base_url: str, run_id: str) -> str:
    """How the run ended: the last event of its replay, which waits for the end (with the
    page's cookie: the run belongs to this browser's session)."""
    response = page.request.get(f"{base_url}/runs/{run_id}/events")
    assert response.ok, response.text()
    return [line[7:] for line in response.text().splitlines() if line.startswith("event: ")][-1]


def test_two_turns(page: Page) -> None:
    send(page, "Hello, how are you?")
    expect(page.get_by_test_id("message-assistant")).to_have_text(
        [plan_answer("Hello, how are you?")])
    expect(page.get_by_test_id("status")).to_have_text("ready")
    send(page, "And a second\nturn?")
    expect(page.get_by_test_id("message-assistant")).to_have_text(
        [plan_answer("Hello, how are you?"), plan_answer("And a second\nturn?")])
    expect(page.get_by_test_id("message-user")).to_have_count(2)


def test_stop_cancels_the_run(page: Page, base_url: str) -> None:
    send(page, "Stop me")
    run_id = streaming_run(page, 0)
    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("status")).to_have_text("ready")
    assert run_end(page, base_url, run_id) == "run.cancelled"
    assert answers(page)[0] != plan_answer("Stop me")


def test_a_reload_mid_answer_continues_it(page: Page, base_url: str) -> None:
    send(page, "Survive a reload")
    run_id = streaming_run(page, 0)
    page.reload()
    expect(page.get_by_test_id("message-user")).to_have_text(["Survive a reload"])
    expect(page.get_by_test_id("message-assistant")).to_have_text(
        [plan_answer("Survive a reload")])
    assert run_end(page, base_url, run_id) == "run.completed"
    # Saved before its terminal event: the run log says so too.
    assert page.request.get(f"{base_url}/runs/{run_id}").json()["status"] == "completed"
    # Finished: another reload shows it once, without resuming anything.
    expect(page.get_by_test_id("status")).to_have_text("ready")
    page.reload()
    expect(page.get_by_test_id("message-assistant")).to_have_text(
        [plan_answer("Survive a reload")])


def test_a_failing_run_shows_its_error(page: Page) -> None:
    page.get_by_test_id("fail").check()
    send(page, "Fail please")
    expect(page.get_by_test_id("error")).to_contain_text("overloaded")
