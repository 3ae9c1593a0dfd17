"""The documentation site builds with warnings as errors, and its generated pages are complete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_builds_strict(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                             "--site-dir", str(tmp_path / "site")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    site = tmp_path / "site"
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
