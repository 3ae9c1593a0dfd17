"""The documentation site builds with warnings as errors, and its generated pages are complete."""

from __future__ import annotations

import functools
import importlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module with `mkdocs build --strict`."""
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                             "--site-dir", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if p.name != "404.html")


class _Text(HTMLParser):
    """The visible prose of a page: no markup, and no code (code may name anything)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("code", "pre", "script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("code", "pre", "script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def prose(page: Path) -> str:
    parser = _Text()
    parser.feed(page.read_text(encoding="utf-8"))
    return " ".join(" ".join(parser.parts).split())


def test_mkdocs_builds_strict(site: Path) -> None:
    config = (site / "reference" / "config" / "index.html").read_text()
    # Generated from the models: every built-in store and every shipped plugin's components.
    for name in ("sqlite", "file-system", "memory", "stdout", "file", "sse", "async-python",
                 "mock-llm", "max_event_bytes", "max_queued_bytes", "1 MiB"):
        assert name in config, name
    hooks = (site / "reference" / "hooks" / "index.html").read_text()
    for hook in ("register_task_types", "register_sinks", "before_node_run", "after_run"):
        assert hook in hooks
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert "runstream runs events" in cli and "--check" in cli
    assert 'class="mermaid"' in (site / "concepts" / "index.html").read_text()


#: How the docs once spoke to the one person who had written a plan for runstream; a reader of
#: the published site never saw it.
PLAN = re.compile(r"\b(?:user's|the|original|your) plan\b|\bplan's\b", re.IGNORECASE)


def test_pages_speak_of_runstream_only(site: Path) -> None:
    found = {str(p.relative_to(site)): m.group(0) for p in pages(site)
             for m in [PLAN.search(prose(p))] if m}
    assert found == {}


class _Assets(HTMLParser):
    """What a page loads: script and link URLs, and inline CSS."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in {"script": ["src"], "link": ["href"], "img": ["src"], "iframe": ["src"],
                     "source": ["src"], "object": ["data"]}.get(tag, []):
            if found.get(name):
                self.urls.append(found[name] or "")
        self.css.append(found.get("style") or "")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css.append(data)


#: url(...) and @import "..." in CSS (and in SVG images, which may carry CSS).
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+(?:url\(\s*)?['"]?([^'");\s]+)""")


def external(url: str) -> bool:
    return url.strip().lower().startswith(("http://", "https://", "//"))


def test_the_site_loads_nothing_from_other_hosts(site: Path) -> None:
    found: list[str] = []
    for page in pages(site):
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8"))
        css = "\n".join(parser.css)
        urls = parser.urls + [a or b for a, b in CSS_URL.findall(css)]
        found += [f"{page.relative_to(site)}: {url}" for url in urls if external(url)]
    for sheet in [*site.rglob("*.css"), *site.rglob("*.svg")]:
        for a, b in CSS_URL.findall(sheet.read_text(encoding="utf-8")):
            if external(a or b):
                found.append(f"{sheet.relative_to(site)}: {a or b}")
    assert found == []
    # Mermaid comes from the site itself, and only the pages with a diagram load it.
    assert (site / "assets" / "javascripts" / "mermaid.min.js").stat().st_size > 1_000_000
    loaders = {str(p.relative_to(site)) for p in pages(site) if "mermaid.min.js" in p.read_text()}
    assert loaders == {"concepts/index.html", "deploy/index.html"}


@pytest.fixture
def served(site: Path) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1 (a free port), stopped after the test."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Material draws a diagram into a closed shadow root; opened here so that the test can look in.
OPEN_SHADOW_ROOTS = """{
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    return attach.call(this, {...init, mode: "open"});
  };
}"""


def test_the_mermaid_diagram_renders_offline(served: str) -> None:
    assert shutil.which(CHROMIUM), "Debian's chromium is needed (.ci/run installs it)"
    from playwright.sync_api import Route, sync_playwright

    blocked: list[str] = []

    def offline(route: Route) -> None:
        host = urlsplit(route.request.url).hostname
        if host == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.add_init_script(OPEN_SHADOW_ROOTS)
            page.route("**/*", offline)
            page.goto(served + "/concepts/")
            diagram = page.locator("div.mermaid svg")
            diagram.first.wait_for(state="visible")
            labels = diagram.first.text_content() or ""
        finally:
            browser.close()
    assert "TaskContext.emit" in labels and "sse_response" in labels
    assert blocked == []


def api_packages() -> list[str]:
    """runstream, its pytest plugin, and every plugin distribution's package."""
    plugins = sorted(init.parent.name for init in ROOT.glob("plugins/*/src/*/__init__.py"))
    return ["runstream", "runstream.testing", *plugins]


def test_the_api_reference_has_every_public_name(site: Path) -> None:
    missing, private = [], []
    for package in api_packages():
        html = (site / "reference" / "api" / package / "index.html").read_text()
        ids = set(re.findall(r'id="([^"]+)"', html))
        missing += [f"{package}.{name}" for name in importlib.import_module(package).__all__
                    if f"{package}.{name}" not in ids]
        # Entries are named by their public import path, never by the private module.
        private += [i for i in ids if re.search(r"\._(?!_)", i)]
    assert missing == []
    assert private == []
    home = (site / "index.html").read_text()
    for package in api_packages():
        assert f'href="reference/api/{package}/"' in home, package


def test_the_api_reference_finds_names_that_init_loads_lazily(tmp_path: Path) -> None:
    """A package whose ``__init__`` has no import griffe can see (names loaded on first use)
    still gets an entry for each name, by its public path."""
    import griffe
    import runstream

    shutil.copytree(ROOT / "core" / "src" / "runstream", tmp_path / "runstream")
    # runstream as it is, but with an __init__ that exports everything lazily.
    (tmp_path / "runstream" / "__init__.py").write_text(
        f"__version__ = {runstream.__version__!r}\n"
        f"__all__ = {sorted(runstream.__all__)!r}\n"
        "def __getattr__(name):\n"
        "    raise AttributeError(name)  # a lookup table in real life\n")
    extension = f"{ROOT / 'docs' / '_ext' / 'api.py'}:PublicNames"

    def load(extensions: griffe.Extensions) -> griffe.Module:
        package = griffe.load("runstream", search_paths=[tmp_path], extensions=extensions,
                              resolve_aliases=True, try_relative_path=False)
        assert isinstance(package, griffe.Module)
        return package

    names = [n for n in runstream.__all__ if n != "__version__"]
    bare = load(griffe.load_extensions())
    assert [n for n in names if n not in bare.members] != []  # griffe alone misses them
    package = load(griffe.load_extensions(extension))
    for name in names:
        member = package[name]
        assert member.path == f"runstream.{name}"
        assert member.is_alias and not member.target_path.startswith("runstream.__init__")


class _Pre(HTMLParser):
    """The text of every <pre> block of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pre":
            self._depth += 1
            if self._depth == 1:
                self.blocks.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.blocks[-1] += data


TEMPLATE = ROOT / "examples" / "plugin_template"


def test_the_plugin_page_shows_the_template_as_it_is(site: Path) -> None:
    html = (site / "plugins" / "index.html").read_text()
    parser = _Pre()
    parser.feed(html)
    shown = {block.strip() for block in parser.blocks}
    files = [TEMPLATE / "pyproject.toml", *sorted((TEMPLATE / "src").rglob("*.py")),
             *sorted((TEMPLATE / "tests").rglob("*.py"))]
    assert [str(f.relative_to(TEMPLATE)) for f in files
            if f.read_text(encoding="utf-8").strip() not in shown] == []
    # The page's configuration for the template's task type and sink is the template's own.
    readme = (TEMPLATE / "README.md").read_text(encoding="utf-8")
    source = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    yaml = re.findall(r"```yaml\n(.*?)```", source, re.DOTALL)
    uses = [block for block in yaml if re.search(r"type: (shout|transcript)\b", block)]
    assert len(uses) >= 2 and [block for block in uses if block not in readme] == []
    # It links the template, the pytest plugin's reference and `runstream plugins --check`.
    assert 'href="#the-plugin-template"' in html
    assert 'href="../reference/api/runstream.testing/"' in html
    assert 'href="../reference/cli/#runstream-plugins"' in html


class _AllText(_Text):
    """All the text of a page, code included (not scripts or styles)."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1


def test_no_page_names_a_private_module(site: Path) -> None:
    """Private modules are rearranged at will: the site names things by their public path."""
    packages = "|".join(re.escape(p) for p in api_packages() if "." not in p)
    private = re.compile(rf"\b(?:{packages})\._[a-z]\w*")
    found = {}
    for page in pages(site):
        parser = _AllText()
        parser.feed(page.read_text(encoding="utf-8"))
        hits = sorted(set(private.findall(" ".join(parser.parts))))
        if hits:
            found[str(page.relative_to(site))] = hits
    assert found == {}
