"""The example's chat page (GET /ui) in a real browser: Playwright driving Debian's Chromium."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from runstream import ComponentConfig, Config

from examples.fastapi_llm.main import create_app
from tests._server import serve
from tests.test_mock_llm import plan_answer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PROMPT = "Hello, how are you?"
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = create_app(config=Config(run_log_store=ComponentConfig(type="memory")))
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
    context = browser.new_context(viewport={"width": 900, "height": 700})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(base_url + "/ui")
    try:
        yield page
    finally:
        context.close()


def record_changes(page: Page) -> None:
    """Keep every text the answer and the status line show, as they change, in
    ``window.snapshots`` and ``window.statuses``."""
    page.evaluate("""() => {
        window.snapshots = [];
        window.statuses = [];
        const answer = document.getElementById("answer");
        const status = document.getElementById("status");
        const options = {childList: true, characterData: true, subtree: true};
        new MutationObserver(() => window.snapshots.push(answer.textContent))
            .observe(answer, options);
        new MutationObserver(() => {
            const text = status.textContent;
            if (window.statuses[window.statuses.length - 1] !== text) window.statuses.push(text);
        }).observe(status, options);
    }""")


def run_status(page: Page, base_url: str, run_id: str) -> str:
    # With the page's session cookie: the run is served to the browser that started it only.
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    response = httpx.get(f"{base_url}/runs/{run_id}", timeout=10, cookies=cookies)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


@pytest.mark.parametrize("pipeline", ["/chat", "/chat/yaml"])
def test_answer_appears_word_by_word(page: Page, base_url: str, pipeline: str,
                                     tmp_path: Path) -> None:
    status = page.locator("#status")
    record_changes(page)
    page.select_option("#pipeline", pipeline)
    page.fill("#prompt", PROMPT)
    page.click("#send")
    expect(status).to_have_text("generating")
    expect(page.locator("#stop")).to_be_enabled()
    expect(status).to_have_text("done")
    assert page.evaluate("window.statuses") == ["sending…", "thinking", "generating", "done"]
    expect(page.locator("#answer")).to_have_text(plan_answer(PROMPT))
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#stop")).to_be_disabled()

    snapshots: list[str] = page.evaluate("window.snapshots")
    shown = [s for s in snapshots if s]
    # The answer grew in many steps, each a prefix of the next: streamed, not all at once.
    assert len(shown) >= 10
    assert all(b.startswith(a) for a, b in itertools.pairwise(shown))
    assert shown[-1] == plan_answer(PROMPT)

    run_id = page.locator("#run-id").inner_text()
    assert run_status(page, base_url, run_id) == "completed"
    page.screenshot(path=str(tmp_path / f"chat-{pipeline.strip('/').replace('/', '-')}.png"))


def test_stop_cancels_the_run(page: Page, base_url: str, tmp_path: Path) -> None:
    page.fill("#prompt", PROMPT)
    page.click("#send")
    answer = page.locator("#answer")
    # Mid-answer: a few words are in (polled every frame, so Stop comes soon after).
    page.wait_for_function("document.getElementById('answer').textContent.includes('received')")
    page.click("#stop")
    expect(page.locator("#status")).to_have_text("stopped")
    expect(page.locator("#send")).to_be_enabled()
    shown = answer.inner_text()
    assert shown != plan_answer(PROMPT)  # stopped before the end of the answer
    run_id = page.locator("#run-id").inner_text()
    deadline = time.monotonic() + 10
    while run_status(page, base_url, run_id) == "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run_status(page, base_url, run_id) == "cancelled"
    page.screenshot(path=str(tmp_path / "chat-stopped.png"))


def test_failing_run_shows_its_error(page: Page, base_url: str, tmp_path: Path) -> None:
    page.fill("#prompt", PROMPT)
    page.check("#fail")
    page.click("#send")
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_have_text(
        'The run failed in step "llm_response": RuntimeError: upstream model overloaded')
    expect(page.locator("#status")).to_have_text("failed")
    expect(page.locator("#answer")).to_have_text("I received your prompt: 'Hello, ")
    run_id = page.locator("#run-id").inner_text()
    assert run_status(page, base_url, run_id) == "failed"
    page.screenshot(path=str(tmp_path / "chat-failed.png"))


def test_rejected_prompt_shows_why(page: Page) -> None:
    page.fill("#prompt", "x" * 8001)
    page.click("#send")
    expect(page.locator("#error")).to_have_text(
        "Request rejected (HTTP 422): prompt: prompt has 8001 characters; the limit is 8000")
    expect(page.locator("#status")).to_have_text("error")
    expect(page.locator("#send")).to_be_enabled()
