"""A real browser (Debian's chromium, through Playwright) reads the stream: EventSource on a GET
endpoint, and fetch() streaming on a POST endpoint, as docs/sse.md shows them."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, Response
from runstream import AsyncPipeline, Config, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE

from tests._server import serve

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

EXPECTED: list[dict[str, Any]] = [
    {"type": "status", "status": "thinking"},
    {"type": "chunk", "text": "line one\nline two\r\n"},
    {"type": "chunk", "text": "é ü 😀 \u2028 </script> \"quoted\""},
    {"type": "chunk", "text": "data: id: 9\n\nevent: evil"},
    {"type": "done", "full_text": "x" * 5000},
]

# The client code of docs/sse.md, run as is in the page.
PAGE = """<!doctype html><meta charset="utf-8"><title>sse</title><script>
window.results = {};
// GET: EventSource
const got = [];
const source = new EventSource("/chat");
source.onmessage = (e) => got.push(JSON.parse(e.data));
for (const name of ["run.completed", "run.failed", "run.cancelled"]) {
  source.addEventListener(name, (e) => {
    source.close();  // the run is over: don't let EventSource reconnect
    window.results.eventsource = {end: name, data: got, last: JSON.parse(e.data)};
  });
}
// POST: fetch() and a small SSE reader
async function* readSSE(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "", event = {data: [], event: "message", id: null};
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\\r\\n|\\r|\\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) yield {...event, data: event.data.join("\\n")};
        event = {data: [], event: "message", id: null};
      } else if (!line.startsWith(":")) {
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        let value = i < 0 ? "" : line.slice(i + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") event.data.push(value);
        else if (field === "event") event.event = value;
        else if (field === "id") event.id = value;
      }
    }
  }
}
(async () => {
  const response = await fetch("/chat", {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({})});
  const data = [];
  let end = null;
  for await (const e of readSSE(response)) {
    if (e.event === "message") data.push(JSON.parse(e.data));
    else end = e.event;
  }
  window.results.fetch = {end, data, runId: response.headers.get("X-Run-Id")};
})();
</script>"""


async def answer() -> AsyncGenerator[dict[str, Any], None]:
    for item in EXPECTED:
        await asyncio.sleep(0.01)
        yield item


@pytest.fixture
def rt(memory_config: Config) -> Iterator[Runtime]:
    runtime = Runtime(memory_config)
    yield runtime
    asyncio.run(runtime.aclose())


def test_browser_reads_the_stream_with_eventsource_and_fetch(rt: Runtime) -> None:
    assert shutil.which(CHROMIUM), "Debian's chromium is needed (.ci/run installs it)"
    from playwright.sync_api import sync_playwright

    sse = SSE(rt)
    app = FastAPI()
    # As GZipMiddleware used to be (compress everything): the stream must still get through.
    app.add_middleware(GZipMiddleware, minimum_size=1, exclude_content_types=())
    app.include_router(sse.router())
    chat = AsyncPipeline("chat", [AsyncPythonTask(name="llm", function=answer)])

    @app.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.api_route("/chat", methods=["GET", "POST"])
    async def stream(request: Request) -> Response:
        return sse.response(chat)

    with serve(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(base + "/")
            page.wait_for_function("window.results.eventsource && window.results.fetch")
            results = page.evaluate("window.results")
        finally:
            browser.close()
    assert results["eventsource"]["data"] == EXPECTED
    assert results["eventsource"]["end"] == "run.completed"
    assert results["eventsource"]["last"]["status"] == "completed"
    assert results["fetch"]["data"] == EXPECTED
    assert results["fetch"]["end"] == "run.completed"
    assert results["fetch"]["runId"]
    assert len(asyncio.run(rt.store.list_runs())) == 2
