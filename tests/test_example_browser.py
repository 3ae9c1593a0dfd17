"""The example's chat page (GET /ui) in a real browser: Playwright driving Debian's Chromium."""

from __future__ import annotations

import itertools
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from runstream import ComponentConfig, Config

from examples.fastapi_llm.main import create_app
from tests._mock_llm_plan import plan_answer
from tests._server import serve
from tests.test_sse_shutdown import _free_port, example_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PROMPT = "Hello, how are you?"
WAIT_MS = 15_000
NO_RUN = "\u2013"  # what the page shows for the run before there is one (an en dash)


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
    expect(page.locator("#run-id")).to_have_text(NO_RUN)
    expect(page.locator("#run-link")).not_to_have_attribute("href", re.compile(".*"))
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
    # The run link appears with the run: it opens the run's status.
    expect(page.locator("#run-link")).to_have_attribute("href", f"/runs/{run_id}")
    expect(page.locator("#answer .marker")).to_have_count(0)
    page.screenshot(path=str(tmp_path / f"chat-{pipeline.strip('/').replace('/', '-')}.png"))


def test_stop_cancels_the_run(page: Page, base_url: str, tmp_path: Path) -> None:
    page.fill("#prompt", PROMPT)
    page.click("#send")
    answer = page.locator("#answer")
    # Mid-answer: a few words are in (polled every frame, so Stop comes soon after).
    page.wait_for_function("document.getElementById('answer').textContent.includes('received')")
    run_id = page.locator("#run-id").inner_text()
    # Stop is an explicit cancel (POST /runs/{id}/cancel, answered 202), not only a dropped
    # connection: the run stops at once even with a reconnect grace.
    with page.expect_response(lambda r: r.url.endswith(f"/runs/{run_id}/cancel")) as cancel:
        page.click("#stop")
    assert cancel.value.request.method == "POST" and cancel.value.status in (202, 409)
    expect(page.locator("#status")).to_have_text("stopped")
    expect(page.locator("#send")).to_be_enabled()
    # A visible marker after the words that arrived, which stop short of the whole answer.
    expect(page.locator("#answer .marker")).to_have_text("[stopped]", use_inner_text=True)
    shown = answer.inner_text()
    assert shown.endswith(" [stopped]") and "  " not in shown
    words = shown.removesuffix("[stopped]")
    assert plan_answer(PROMPT).startswith(words) and words != plan_answer(PROMPT)
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


def test_rejected_prompt_shows_why(page: Page, tmp_path: Path) -> None:
    page.fill("#prompt", "x" * 8001)
    page.click("#send")
    expect(page.locator("#error")).to_have_text(
        "Request rejected (HTTP 422): prompt: prompt has 8001 characters; the limit is 8000")
    expect(page.locator("#status")).to_have_text("error")
    expect(page.locator("#send")).to_be_enabled()
    # No run was started, so there is nothing to link to.
    expect(page.locator("#run-id")).to_have_text(NO_RUN)
    expect(page.locator("#run-link")).not_to_have_attribute("href", re.compile(".*"))
    page.screenshot(path=str(tmp_path / "chat-rejected.png"))


@pytest.mark.slow
def test_a_server_shutdown_shows_its_reason(browser: Browser, tmp_path: Path) -> None:
    """SIGTERM to a real `uvicorn examples.fastapi_llm.main:app` mid-answer: the page says the
    run was cancelled and why, and marks the answer as cut short."""
    port = _free_port()
    with example_server(tmp_path, port) as server:
        context = browser.new_context(viewport={"width": 900, "height": 700})
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(f"http://127.0.0.1:{port}/ui")
            page.fill("#prompt", PROMPT)
            page.click("#send")
            page.wait_for_function(
                "document.getElementById('answer').textContent.includes('received')")
            server.send_signal(signal.SIGTERM)
            expect(page.locator("#status")).to_have_text("cancelled: shutdown")
            marker = page.locator("#answer .marker")
            expect(marker).to_have_text("[cancelled: shutdown]", use_inner_text=True)
            shown = page.locator("#answer").inner_text()
            assert shown.startswith("I received") and shown.endswith(" [cancelled: shutdown]")
            assert "  " not in shown
            expect(page.locator("#error")).to_be_hidden()
            expect(page.locator("#send")).to_be_enabled()
            run_id = page.locator("#run-id").inner_text()
            expect(page.locator("#run-link")).to_have_attribute("href", f"/runs/{run_id}")
            page.screenshot(path=str(tmp_path / "chat-shutdown.png"))
        finally:
            context.close()
        assert server.wait(timeout=20) in (0, -signal.SIGTERM)
