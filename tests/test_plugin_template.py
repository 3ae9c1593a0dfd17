"""The plugin template builds into a wheel that works in a fresh venv beside the core."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "examples" / "plugin_template"


def sh(*args: str | Path, cwd: Path | None = None, check: bool = True
       ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT", "RUNSTREAM_", "PYTHONPATH"))}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n"
                             f"{result.stderr}")
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build wheels (pip install uv)"
    base = tmp_path_factory.mktemp("template")
    dist = base / "dist"
    sh(uv, "build", "--wheel", "--out-dir", dist, TEMPLATE)
    sh(uv, "build", "--wheel", "--out-dir", dist, ROOT / "core")
    wheels = sorted(dist.glob("*.whl"))
    assert {w.name.split("-")[0] for w in wheels} == {"runstream", "runstream_shout"}
    env_dir = base / "venv"
    sh(uv, "venv", "--python", sys.executable, env_dir)
    python = env_dir / "bin" / "python"
    sh(uv, "pip", "install", "--python", python, *wheels, "pytest>=8", "pytest-asyncio>=0.24")
    return env_dir


def test_yaml_pipeline_uses_the_plugin_task_type_and_config_sink(venv: Path,
                                                                  tmp_path: Path) -> None:
    (tmp_path / "runstream.yaml").write_text(
        "run_log_store: {type: file-system, path: runs}\n"
        "sinks:\n  - {type: transcript, directory: transcripts}\n")
    (tmp_path / "shout.yaml").write_text(
        "name: shout-demo\nsteps:\n"
        "  - {name: shout, type: shout, parameter: text, returns: [shouted]}\n")
    result = sh(venv / "bin" / "runstream", "run", "shout.yaml", "--param",
                "text=hello plugin world", "--run-id", "tpl-1", cwd=tmp_path)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1] == {"type": "done", "shouted": "HELLO PLUGIN WORLD"}
    assert (tmp_path / "transcripts" / "tpl-1.txt").read_text() == (
        "HELLO PLUGIN WORLD\n[completed]\n")
    log = json.loads((tmp_path / "runs" / "tpl-1.json").read_text())
    assert log["status"] == "completed"


def test_plugins_lists_the_installed_template(venv: Path, tmp_path: Path) -> None:
    result = sh(venv / "bin" / "runstream", "plugins", "--json", cwd=tmp_path)
    infos = {i["name"]: i for i in json.loads(result.stdout)}
    shout = infos["shout"]
    assert shout["distribution"] == "runstream-shout" and shout["status"] == "loaded"
    assert shout["registered"] == {"task_types": ["shout"], "sinks": ["transcript"]}


def test_the_template_s_own_tests_pass_in_its_venv(venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "tpl"
    shutil.copytree(TEMPLATE, work, ignore=shutil.ignore_patterns("src", "__pycache__"))
    result = sh(venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                cwd=work, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
