"""The documentation site builds with warnings as errors, and its generated pages are complete."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

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
