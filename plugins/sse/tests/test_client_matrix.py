"""Every kind of SSE client reads a runstream stream exactly (issue 10, item 14).

One real uvicorn server streams hostile chunk texts (line breaks of every kind, control
characters, emoji, text that looks like SSE fields, 20,000 characters, lone surrogates); each
reader below must hand back every text exactly: httpx-sse, httpx ``iter_lines()``, requests
``iter_lines()`` (bytes and ``decode_unicode=True``), sseclient-py, Node's ``eventsource`` and
``eventsource-parser`` (npm, installed here at test time) and Chromium's ``EventSource``.

Readers that split lines like ``str.splitlines`` (httpx ``iter_lines()``, requests with
``decode_unicode=True``) are why JSON frames escape U+0085, U+2028 and U+2029 (docs/sse.md).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import sseclient
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from httpx_sse import connect_sse
from runstream import AsyncPipeline, ComponentConfig, Config, Runtime
from runstream_async_python import AsyncPythonTask
from runstream_sse import SSE

from tests._npm import install_npm_packages
from tests._server import serve

ROOT = Path(__file__).resolve().parents[3]
#: Where the npm clients are installed (in .gitignore), pinned to versions that run on Node 20.
NPM_DIR = ROOT / ".npm-clients"
NPM_PACKAGES = {"eventsource": "4.1.1", "eventsource-parser": "3.1.1"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMEOUT = 30

#: What str.splitlines splits on besides CR and LF; SSE itself splits only on CR, LF, CRLF.
SPLITLINES_SEPARATORS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = [chr(c) for c in range(0x20)] + ["\x7f"]
EMOJI = ["😀", "👩\u200d👩\u200d👧\u200d👦", "🏳\ufe0f\u200d🌈", "👍🏽", "🇫🇷", "e\u0301",
         "\u200b", "\ufeff", "\ufffd", "\U0010ffff"]
FIELDS = ["data: x", "id: 9", "event: run.completed", ": comment", "retry: 1", "data:",
          "event: run.completed\ndata: {}\n\n", "id: 9\r\nretry: 1\r\n\r\n: c\n\ndata: x"]
LONG = ("lorem ipsum é 😀\u2028\n\r\x85data: x\x00 " * 1000)[:20_000]

PAYLOADS: list[str] = [
    "plain text",
    "",
    "\n", "\r", "\r\n", "\n\n", "\r\r", "\n\r", "a\nb", "a\r\nb", "a\rb", " leading space",
    *SPLITLINES_SEPARATORS,
    *(f"a{sep}b" for sep in SPLITLINES_SEPARATORS),
    "".join(SPLITLINES_SEPARATORS),
    *(f"<{c}>" for c in CONTROLS),
    "".join(CONTROLS),
    *EMOJI,
    "".join(EMOJI),
    *FIELDS,
    LONG,
    "x" * 20_000,
    # Lone surrogates: a Python str (and a JS string) holds them; JSON carries them as \ud800.
    "\ud800", "a\udfffb", "\udc00\ud800",
    # Combinations.
    "\r\n\u2028\x85\u2029😀\x00data: x\n\nid: 9\n\ud800",
    "".join(SPLITLINES_SEPARATORS + CONTROLS + EMOJI + FIELDS),
]


async def hostile_chunks() -> AsyncGenerator[dict[str, Any], None]:
    for text in PAYLOADS:
        yield {"type": "chunk", "text": text}


# EventSource only does GET: the page and the Node EventSource read GET /chat.
PAGE = """<!doctype html><meta charset="utf-8"><title>matrix</title><script>
const texts = [];
const source = new EventSource(%s);
source.onmessage = (e) => texts.push(JSON.parse(e.data).text);
for (const name of ["run.completed", "run.failed", "run.cancelled"]) {
  source.addEventListener(name, () => {
    source.close();
    // JSON.stringify escapes lone surrogates, so they cross back to Python exactly.
    window.result = JSON.stringify({end: name, texts});
  });
}
</script>"""

NODE_EVENTSOURCE = """
import {EventSource} from "eventsource";
const texts = [];
const source = new EventSource(process.argv[2]);
source.onmessage = (e) => texts.push(JSON.parse(e.data).text);
source.onerror = (e) => { console.error("eventsource error", e); process.exit(1); };
for (const name of ["run.completed", "run.failed", "run.cancelled"]) {
  source.addEventListener(name, () => {
    source.close();
    process.stdout.write(JSON.stringify({end: name, texts}));
  });
}
"""

NODE_PARSER = """
import {createParser} from "eventsource-parser";
const texts = [];
let end = null;
const parser = createParser({onEvent(e) {
  if (e.event === undefined) texts.push(JSON.parse(e.data).text);
  else end = e.event;
}});
const response = await fetch(process.argv[2], {method: "POST",
  headers: {"Content-Type": "application/json"}, body: "{}"});
const decoder = new TextDecoder();
for await (const chunk of response.body) parser.feed(decoder.decode(chunk, {stream: true}));
parser.feed(decoder.decode());
process.stdout.write(JSON.stringify({end, texts}));
"""


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    sse = SSE(runtime)
    app = FastAPI(lifespan=sse.lifespan)
    app.include_router(sse.router())
    chat = AsyncPipeline("chat", [AsyncPythonTask(name="llm", function=hostile_chunks)])

    @app.api_route("/chat", methods=["GET", "POST"])
    async def stream() -> Response:
        return sse.response(chat)

    @app.get("/page")
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE % json.dumps("/chat"))

    try:
        with serve(app) as url:
            yield url
    finally:
        asyncio.run(runtime.aclose())


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """The npm clients, installed once into NPM_DIR (kept between runs; .gitignore'd)."""
    install_npm_packages(NPM_DIR, "runstream-sse-clients", NPM_PACKAGES, "the client matrix")
    (NPM_DIR / "eventsource.mjs").write_text(NODE_EVENTSOURCE)
    (NPM_DIR / "parser.mjs").write_text(NODE_PARSER)
    return NPM_DIR


Result = tuple[str | None, list[str]]


def text_of(data: str) -> str:
    """The chunk text of an event's data, or a marker naming a frame that the reader broke."""
    try:
        text: str = json.loads(data)["text"]
    except ValueError:
        return f"<broken frame: {data[:60]!r}>"
    return text


def read_data_lines(lines: Iterable[str]) -> Result:
    """A minimal SSE reader over lines (as a user writes one around ``iter_lines()``): the
    texts of unnamed events, and the name of the first named event, which ends the run."""
    texts: list[str] = []
    data: list[str] = []
    event: str | None = None
    for line in lines:
        if line == "":
            if data and event is None:
                texts.append(text_of("\n".join(data)))
            elif data:
                return event, texts
            data, event = [], None
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            event = line[6:].removeprefix(" ")
    return None, texts


def httpx_sse_reader(base: str) -> Result:
    texts: list[str] = []
    with httpx.Client(timeout=TIMEOUT) as client, \
            connect_sse(client, "POST", base + "/chat", json={}) as source:
        for event in source.iter_sse():
            if event.event != "message":
                return event.event, texts
            texts.append(text_of(event.data))
    return None, texts


def httpx_lines_reader(base: str) -> Result:
    with httpx.stream("POST", base + "/chat", json={}, timeout=TIMEOUT) as response:
        return read_data_lines(response.iter_lines())


def requests_bytes_reader(base: str) -> Result:
    with requests.post(base + "/chat", json={}, stream=True, timeout=TIMEOUT) as response:
        return read_data_lines(line.decode("utf-8") for line in response.iter_lines())


def requests_unicode_reader(base: str) -> Result:
    with requests.post(base + "/chat", json={}, stream=True, timeout=TIMEOUT) as response:
        assert response.encoding == "utf-8"  # from the Content-Type's charset
        return read_data_lines(response.iter_lines(decode_unicode=True))


def sseclient_reader(base: str) -> Result:
    texts: list[str] = []
    with requests.post(base + "/chat", json={}, stream=True, timeout=TIMEOUT,
                       headers={"Accept": "text/event-stream"}) as response:
        for event in sseclient.SSEClient(response).events():
            if event.event != "message":
                return event.event, texts
            texts.append(text_of(event.data))
    return None, texts


def node_reader(script: str, path: str) -> Callable[[str, Path], Result]:
    def read(base: str, clients: Path) -> Result:
        done = subprocess.run(["node", str(clients / script), base + path],
                              capture_output=True, timeout=TIMEOUT, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        result = json.loads(done.stdout)
        return result["end"], result["texts"]
    return read


def chromium_reader(base: str) -> Result:
    assert shutil.which(CHROMIUM), "Debian's chromium is needed (.ci/run installs it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             timeout=TIMEOUT * 1000)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT * 1000)
            page.goto(base + "/page")
            page.wait_for_function("window.result !== undefined")
            result = json.loads(page.evaluate("window.result"))
        finally:
            browser.close()
    return result["end"], result["texts"]


PYTHON_READERS: dict[str, Callable[[str], Result]] = {
    "httpx-sse": httpx_sse_reader,
    "httpx-iter_lines": httpx_lines_reader,
    "requests-iter_lines-bytes": requests_bytes_reader,
    "requests-iter_lines-decode_unicode": requests_unicode_reader,
    "sseclient-py": sseclient_reader,
    "chromium-EventSource": chromium_reader,
}
NODE_READERS: dict[str, Callable[[str, Path], Result]] = {
    "node-eventsource": node_reader("eventsource.mjs", "/chat"),
    "node-eventsource-parser": node_reader("parser.mjs", "/chat"),
}


def assert_exact(result: Result) -> None:
    end, texts = result
    assert end == "run.completed"
    assert len(texts) == len(PAYLOADS)
    wrong = [(i, want, got) for i, (want, got) in enumerate(zip(PAYLOADS, texts, strict=True))
             if want != got]
    assert not wrong, f"{len(wrong)} chunks changed, e.g. {wrong[:3]!r}"


@pytest.mark.parametrize("reader", list(PYTHON_READERS))
def test_python_and_browser_readers_recover_every_chunk(base_url: str, reader: str) -> None:
    assert_exact(PYTHON_READERS[reader](base_url))


@pytest.mark.parametrize("reader", list(NODE_READERS))
def test_node_readers_recover_every_chunk(base_url: str, node_clients: Path,
                                          reader: str) -> None:
    assert_exact(NODE_READERS[reader](base_url, node_clients))


def test_the_replay_reads_as_exactly(base_url: str) -> None:
    """GET /runs/{id}/events (the runs router's replay) sends the same frames."""
    with httpx.stream("POST", base_url + "/chat", json={}, timeout=TIMEOUT) as response:
        run_id = response.headers["X-Run-Id"]
        assert_exact(read_data_lines(response.iter_lines()))
    url = f"{base_url}/runs/{run_id}/events"
    with requests.get(url, stream=True, timeout=TIMEOUT) as response:
        assert_exact(read_data_lines(response.iter_lines(decode_unicode=True)))
    with httpx.stream("GET", url, timeout=TIMEOUT) as response:
        assert_exact(read_data_lines(response.iter_lines()))
