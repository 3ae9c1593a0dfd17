"""Plugins found through real entry points: two distributions built and installed into a tmp dir.

``rs-testplugin-good`` registers a task type and a sink; ``rs-testplugin-broken`` raises
ImportError when imported. Each module writes a marker file when imported, so a test can tell
whether runstream ran a plugin's code at all. Every check runs the ``runstream`` command in a
subprocess with ``PYTHONPATH`` pointing at the install dir, as a user's shell would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from runstream.testing import read_jsonl

GOOD_DIST = "rs-testplugin-good"
BROKEN_DIST = "rs-testplugin-broken"
TWIN_DIST = "rs-testplugin-twin"  # uses the same entry-point name as the good one: `good`
#: Every distribution with a runstream entry point in these tests: the workspace's and ours.
INSTALLED = {BROKEN_DIST, GOOD_DIST, "runstream-async-python", "runstream-file",
             "runstream-mock-llm", "runstream-openai", "runstream-postgres",
             "runstream-redis", "runstream-sse", "runstream-stdout", "runstream-taskiq"}

TWIN_MODULE = '''
import runstream


class Twin(runstream.Task):
    async def execute(self, ctx):
        return None


@runstream.hookimpl
def register_task_types(register):
    register("twin", Twin)
'''

GOOD_MODULE = '''
"""A plugin with a task type (`shout`) and a sink (`collect`)."""
import json
import os
from pathlib import Path

import runstream

if os.environ.get("RS_TEST_MARKERS"):
    Path(os.environ["RS_TEST_MARKERS"], "good-imported").touch()


class ShoutTask(runstream.Task):
    text: str

    async def execute(self, ctx):
        for word in self.text.split():
            await ctx.emit({"type": "word", "word": word.upper()})
        return None


class CollectSink(runstream.Sink):
    path: str

    async def send(self, event):
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(event.model_dump_json() + "\\n")


@runstream.hookimpl
def register_task_types(register):
    register("shout", ShoutTask)


@runstream.hookimpl
def register_sinks(register):
    register("collect", CollectSink)
'''

BROKEN_MODULE = '''
import os
from pathlib import Path

if os.environ.get("RS_TEST_MARKERS"):
    Path(os.environ["RS_TEST_MARKERS"], "broken-imported").touch()

raise ImportError("rs_testplugin_broken needs the 'frobnicate' library")
'''


def _write_dist(root: Path, dist: str, version: str, module: str, source: str,
                ep_name: str | None = None) -> Path:
    src = root / dist
    (src / "src" / module).mkdir(parents=True)
    (src / "src" / module / "__init__.py").write_text(textwrap.dedent(source))
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""
        [project]
        name = "{dist}"
        version = "{version}"
        requires-python = ">=3.11"

        [project.entry-points.runstream]
        {ep_name or dist.removeprefix("rs-testplugin-")} = "{module}"

        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [tool.hatch.build.targets.wheel]
        packages = ["src/{module}"]
    """))
    return src


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both distributions, built with hatchling and installed by uv into one directory."""
    root = tmp_path_factory.mktemp("plugin-src")
    good = _write_dist(root, GOOD_DIST, "1.2.3", "rs_testplugin_good", GOOD_MODULE)
    broken = _write_dist(root, BROKEN_DIST, "0.0.1", "rs_testplugin_broken", BROKEN_MODULE)
    twin = _write_dist(root, TWIN_DIST, "2.0", "rs_testplugin_twin", TWIN_MODULE, "good")
    target = tmp_path_factory.mktemp("site")
    _install(target, good, broken)
    # The twin goes into a directory of its own, added to PYTHONPATH only where it is tested.
    _install(target / "twin", twin)
    return target


def _install(target: Path, *sources: Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "these tests install plugins with uv; put uv on PATH"
    cmd = [uv, "pip", "install", "--quiet", "--no-deps", "--python", sys.executable,
           "--target", str(target), *map(str, sources)]
    # The offline attempt uses hatchling from uv's cache; fall back to the index without it.
    done = subprocess.run([*cmd, "--offline"], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Shell:
    """Runs ``runstream ...`` in a fresh process, in a tmp working directory."""

    cwd: Path
    site: Path
    markers: Path

    def run(self, *args: str, **env: str) -> Result:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
        environ.update({
            "PYTHONPATH": str(self.site),
            "RS_TEST_MARKERS": str(self.markers),
            # stevedore caches entry points on disk: keep that cache out of the user's home.
            "XDG_CACHE_HOME": str(self.cwd / ".cache"),
            **env,
        })
        script = Path(sys.executable).with_name("runstream")
        cmd = [str(script)] if script.exists() else [
            sys.executable, "-c", "from runstream._cli import entry; entry()"]
        done = subprocess.run([*cmd, *args], cwd=self.cwd, env=environ, capture_output=True,
                              text=True, timeout=60)
        return Result(done.returncode, done.stdout, done.stderr)

    def imported(self) -> set[str]:
        return {p.name.removesuffix("-imported") for p in self.markers.iterdir()}


@pytest.fixture
def shell(site: Path, tmp_path: Path) -> Iterator[Shell]:
    markers = tmp_path / "markers"
    markers.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    yield Shell(work, site, markers)


def _by_distribution(plugins: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["distribution"]: p for p in plugins if p["distribution"]}


def test_good_plugin_loads_and_broken_one_is_reported(shell: Shell) -> None:
    result = shell.run("plugins", "--json")

    assert result.code == 0, result.stderr
    plugins = _by_distribution(result.json())
    good = plugins[GOOD_DIST]
    assert good["status"] == "loaded"
    assert good["version"] == "1.2.3"
    assert good["name"] == "good"
    assert good["module"] == "rs_testplugin_good"
    assert good["registered"] == {"task_types": ["shout"], "sinks": ["collect"]}
    broken = plugins[BROKEN_DIST]
    assert broken["status"] == "failed"
    assert broken["error"] == "ImportError: rs_testplugin_broken needs the 'frobnicate' library"
    assert broken["registered"] == {}
    # The failure is isolated: the built-ins and the workspace's own plugins still load.
    assert plugins["runstream"]["status"] == "builtin"
    assert plugins["runstream"]["registered"] == {
        "executors": ["local"], "run_log_stores": ["sqlite", "file-system", "memory"],
        "event_logs": ["memory"]}
    assert plugins["runstream-async-python"]["status"] == "loaded"
    assert plugins["runstream-redis"]["registered"] == {"event_logs": ["redis"]}
    assert "Traceback" not in result.stderr
    assert shell.imported() == {"good", "broken"}


def test_plugins_text_listing_names_what_each_registered(shell: Shell) -> None:
    result = shell.run("plugins")

    assert result.code == 0
    lines = result.stdout.splitlines()
    good = lines.index(f"good  ({GOOD_DIST} 1.2.3)  loaded")
    assert lines[good + 1:good + 3] == ["    sinks: collect", "    task types: shout"]
    broken = next(i for i, line in enumerate(lines) if line.startswith("broken  ("))
    assert lines[broken].endswith("failed")
    assert "error: ImportError: rs_testplugin_broken needs" in lines[broken + 1]


def test_blocked_plugin_is_never_imported(shell: Shell) -> None:
    result = shell.run("plugins", "--json", RUNSTREAM_BLOCK_PLUGINS=GOOD_DIST)

    assert result.code == 0
    plugins = _by_distribution(result.json())
    assert plugins[GOOD_DIST]["status"] == "blocked"
    assert plugins[GOOD_DIST]["registered"] == {}
    assert plugins[BROKEN_DIST]["status"] == "failed"  # blocking one leaves the others be
    assert plugins["runstream-async-python"]["status"] == "loaded"
    assert shell.imported() == {"broken"}


def test_blocking_the_broken_plugin_silences_it(shell: Shell) -> None:
    # Names are matched like pip does: case, '_' and '.' do not matter.
    result = shell.run("plugins", "--json", RUNSTREAM_BLOCK_PLUGINS="RS_testplugin.Broken")

    assert result.code == 0
    plugins = _by_distribution(result.json())
    assert plugins[BROKEN_DIST]["status"] == "blocked"
    assert plugins[BROKEN_DIST]["error"] is None
    assert plugins[GOOD_DIST]["status"] == "loaded"
    assert result.stderr == ""
    assert shell.imported() == {"good"}


def test_load_plugins_allows_only_the_named_distributions(shell: Shell) -> None:
    result = shell.run("plugins", "--json", RUNSTREAM_LOAD_PLUGINS=GOOD_DIST)

    assert result.code == 0
    plugins = result.json()
    statuses = {p["distribution"]: p["status"] for p in plugins}
    assert statuses.pop("runstream") == "builtin"
    assert statuses.pop(GOOD_DIST) == "loaded"
    assert statuses  # the workspace's plugins and the broken one are all still listed ...
    assert set(statuses.values()) == {"not allowed"}  # ... and none of them loaded
    assert shell.imported() == {"good"}


def test_empty_load_plugins_loads_none(shell: Shell) -> None:
    result = shell.run("plugins", "--json", RUNSTREAM_LOAD_PLUGINS="")

    assert result.code == 0
    plugins = result.json()
    assert plugins[0]["distribution"] == "runstream"
    assert plugins[0]["registered"]["run_log_stores"] == ["sqlite", "file-system", "memory"]
    assert {p["status"] for p in plugins[1:]} == {"not allowed"}
    assert {GOOD_DIST, BROKEN_DIST} <= {p["distribution"] for p in plugins}
    assert shell.imported() == set()


def test_strict_mode_turns_a_broken_plugin_into_an_error(shell: Shell) -> None:
    allow = f"{GOOD_DIST},{BROKEN_DIST}"
    result = shell.run("plugins", RUNSTREAM_STRICT_PLUGINS="1", RUNSTREAM_LOAD_PLUGINS=allow)

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "runstream: error: plugin 'broken' (rs_testplugin_broken) failed to load: "
        "ImportError: rs_testplugin_broken needs the 'frobnicate' library"
    ]

    # Without strict mode the same set of plugins is only a report.
    assert shell.run("plugins", RUNSTREAM_LOAD_PLUGINS=allow).code == 0


def test_run_uses_the_plugins_task_type_and_sink(shell: Shell) -> None:
    (shell.cwd / "runstream.yaml").write_text(textwrap.dedent("""
        run_log_store: {type: file-system}
        sinks:
          - {type: collect, path: events.jsonl}
    """))
    (shell.cwd / "shout.yaml").write_text(textwrap.dedent("""
        name: shouting
        steps:
          - {name: shout, type: shout, text: hello plugin world}
    """))

    result = shell.run("run", "shout.yaml", "--run-id", "shout-1")

    assert result.code == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"type": "word", "word": "HELLO"},
        {"type": "word", "word": "PLUGIN"},
        {"type": "word", "word": "WORLD"},
    ]
    # The broken plugin is reported once on stderr and does not stop the run.
    stderr = result.stderr.splitlines()
    assert stderr[0] == ("runstream plugin 'broken' failed to load: ImportError: "
                         "rs_testplugin_broken needs the 'frobnicate' library")
    assert stderr[1].startswith("run shout-1 completed")
    assert len(stderr) == 2
    events = read_jsonl(shell.cwd / "events.jsonl")
    assert [e["type"] for e in events] == [
        "run.started", "step.started", "step.event", "step.event", "step.event",
        "step.completed", "run.completed"]
    assert {e["run_id"] for e in events} == {"shout-1"}
    assert [e["seq"] for e in events] == list(range(1, 8))

    shown = shell.run("runs", "show", "shout-1", RUNSTREAM_BLOCK_PLUGINS=BROKEN_DIST)
    assert shown.code == 0
    assert shown.json()["status"] == "completed"
    assert shown.json()["steps"]["shout"]["status"] == "completed"


def test_unknown_task_type_lists_the_installed_ones(shell: Shell) -> None:
    (shell.cwd / "p.yaml").write_text("name: p\nsteps:\n  - {name: s, type: shoot, text: x}\n")

    result = shell.run("run", "p.yaml", RUNSTREAM_LOAD_PLUGINS=GOOD_DIST)

    assert result.code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("runstream: error: p.yaml: steps[0]: unknown task type 'shoot'; "
                           "installed task types: shout (RUNSTREAM_LOAD_PLUGINS does not list ")
    assert line.endswith(": one of them may register it)")


@pytest.mark.parametrize(("env", "why"), [
    ({"RUNSTREAM_BLOCK_PLUGINS": f"{BROKEN_DIST},runstream-mock-llm"},
     "RUNSTREAM_BLOCK_PLUGINS blocks"),
    ({"RUNSTREAM_LOAD_PLUGINS": GOOD_DIST}, "RUNSTREAM_LOAD_PLUGINS does not list"),
])
def test_a_task_type_the_plugin_variables_keep_out_says_so(
        shell: Shell, env: dict[str, str], why: str) -> None:
    (shell.cwd / "p.yaml").write_text("name: p\nsteps:\n  - {name: s, type: mock-llm}\n")

    result = shell.run("run", "p.yaml", **env)

    assert result.code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("runstream: error: p.yaml: steps[0]: unknown task type 'mock-llm'; ")
    assert line.endswith(f"; 'mock-llm' belongs to runstream-mock-llm, which {why}")


@pytest.mark.parametrize("var", ["RUNSTREAM_LOAD_PLUGINS", "RUNSTREAM_BLOCK_PLUGINS"])
def test_a_misspelt_plugin_name_is_reported(shell: Shell, var: str) -> None:
    names = f"{GOOD_DIST},rs-testplugin-godo"
    if var == "RUNSTREAM_BLOCK_PLUGINS":
        names = f"{BROKEN_DIST},rs-testplugin-godo"

    result = shell.run("plugins", **{var: names})

    assert result.code == 0
    assert result.stderr.splitlines() == [
        f"runstream: warning: {var} names 'rs-testplugin-godo', which is not an installed "
        f"runstream plugin; installed plugins: {', '.join(sorted(INSTALLED))}"]

    strict = shell.run("plugins", RUNSTREAM_STRICT_PLUGINS="1", **{var: names})

    assert (strict.code, strict.stdout) == (2, "")
    assert strict.stderr.splitlines() == [
        f"runstream: error: {var} names 'rs-testplugin-godo', which is not an installed "
        f"runstream plugin; installed plugins: {', '.join(sorted(INSTALLED))}"]


def test_two_distributions_may_use_the_same_entry_point_name(shell: Shell) -> None:
    result = shell.run("plugins", "--json", RUNSTREAM_LOAD_PLUGINS=f"{GOOD_DIST},{TWIN_DIST}",
                       PYTHONPATH=f"{shell.site}{os.pathsep}{shell.site / 'twin'}")

    assert result.code == 0, result.stderr
    plugins = _by_distribution(result.json())
    # Both load, each under a name qualified by its distribution, each credited with its own.
    assert plugins[GOOD_DIST]["status"] == plugins[TWIN_DIST]["status"] == "loaded"
    assert plugins[GOOD_DIST]["name"] == f"{GOOD_DIST}:good"
    assert plugins[TWIN_DIST]["name"] == f"{TWIN_DIST}:good"
    assert plugins[GOOD_DIST]["registered"] == {"task_types": ["shout"], "sinks": ["collect"]}
    assert plugins[TWIN_DIST]["registered"] == {"task_types": ["twin"]}
