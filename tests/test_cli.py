"""The ``runstream`` command: exit codes, what goes to stdout and stderr, ``plugins`` and ``runs``.

Most tests call ``runstream._cli.main`` in-process (capsys); a few run the installed ``runstream``
script in a subprocess, as a user's shell does. All run in a tmp working directory, so the default
run log database (``.runstream/runstream.db``) lands there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from runstream import AsyncPipeline, ComponentConfig, Config, MemoryEventLog, Runtime
from runstream._cli import cancel_run, main

# Only the workspace's async-python plugin: these tests do not depend on the other plugins.
PLUGINS = "runstream-async-python"

WORDS_PIPELINE = """\
name: words
steps:
  - name: split
    type: async-python
    function: "tests.test_cli:words"
    returns: [count]
"""

FAILING_PIPELINE = """\
name: failing
steps:
  - {name: split, type: async-python, function: "tests.test_cli:words"}
  - {name: explode, type: async-python, function: "tests.test_cli:explode"}
"""


async def words(text: str = "hello world") -> AsyncIterator[dict[str, Any]]:
    parts = text.split()
    for word in parts:
        yield {"type": "word", "word": word}
    yield {"type": "done", "count": len(parts)}


async def explode() -> None:
    raise ValueError("kaput")


def make_pipeline() -> AsyncPipeline:
    from runstream_async_python import AsyncPythonTask

    return AsyncPipeline("from-function", [AsyncPythonTask(name="split", function=words)])


@pytest.fixture(autouse=True)
def cwd(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("RUNSTREAM_LOAD_PLUGINS", PLUGINS)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI puts the cwd on sys.path
    (in_tmp_cwd / "words.yaml").write_text(WORDS_PIPELINE)
    (in_tmp_cwd / "failing.yaml").write_text(FAILING_PIPELINE)
    yield in_tmp_cwd


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``runstream ARGS``; returns (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def error_line(err: str) -> str:
    """The single line a failing command writes to stderr."""
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    return lines[0]


# -- runstream run -----------------------------------------------------------------------------


def test_run_prints_events_as_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "run", "words.yaml", "--param", "text=to be or")

    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"type": "word", "word": "to"}, {"type": "word", "word": "be"},
        {"type": "word", "word": "or"}, {"type": "done", "count": 3}]
    assert re.fullmatch(r"run \S+ completed in \d+ ms", error_line(err))


def test_run_reads_environment_parameters_and_records_the_owner(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI is the caller asking for RUNSTREAM_PRM_* (a library run is not: test_params.py).
    monkeypatch.setenv("RUNSTREAM_PRM_text", "from env")
    code, out, _ = cli(capsys, "run", "words.yaml", "--run-id", "env-1", "--owner", "ada")
    assert code == 0
    assert json.loads(out.splitlines()[0]) == {"type": "word", "word": "from"}

    code, out, _ = cli(capsys, "runs", "show", "env-1")
    assert code == 0
    shown = json.loads(out)
    assert (shown["owner"], shown["parameters"]) == ("ada", {"text": "from env"})


def test_run_quiet_prints_only_the_status(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "run", "words.yaml", "-q", "--run-id", "quiet-1")

    assert (code, out) == (0, "")
    assert error_line(err).startswith("run quiet-1 completed")


def test_run_a_module_function_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "run", "tests.test_cli:make_pipeline", "-p", "text=a b")

    assert code == 0
    assert out.splitlines()[0] == '{"type": "word", "word": "a"}'


def test_run_parameters_are_json_decoded(capsys: pytest.CaptureFixture[str]) -> None:
    (Path("params.yaml")).write_text("text: from the file\n")

    code, _, _ = cli(capsys, "run", "words.yaml", "--run-id", "p1", "-p", 'text="x y"',
                     "--parameters-file", "params.yaml")
    assert code == 0
    code, out, _ = cli(capsys, "runs", "show", "p1")
    assert code == 0
    log = json.loads(out)
    assert log["parameters"] == {"text": "x y"}  # --param wins over the parameters file
    assert log["steps"]["split"]["attempts"][0]["output_parameters"] == {"count": 2}


def test_failed_pipeline_exits_1_naming_the_step_and_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "run", "failing.yaml", "--run-id", "fail-1")

    assert code == 1
    assert error_line(err) == "run fail-1 failed in step 'explode': ValueError: kaput"
    assert len(out.splitlines()) == 3  # the events of the step that ran are still printed


@pytest.mark.parametrize(("args", "message"), [
    (["run", "words.yaml", "--param", "oops"],
     "runstream: error: --param 'oops': use NAME=VALUE, e.g. --param prompt=hello"),
    (["run", "words.yaml", "--run-id", "../etc/passwd"],
     "runstream: error: invalid run id '../etc/passwd': use 1-128 letters, digits, '.', '_' "
     "or '-', starting with a letter or digit (no '..')"),
    (["run", "missing.yaml"],
     "runstream: error: cannot read pipeline file missing.yaml: No such file or directory"),
    (["run", "no_such_module_xyz:build"],
     "runstream: error: cannot import module 'no_such_module_xyz' for "
     "'no_such_module_xyz:build': No module named 'no_such_module_xyz' ('no_such_module_xyz' "
     "is looked up relative to the current working directory, {cwd}, and PYTHONPATH: run from "
     "the project root or add it to PYTHONPATH)"),
    (["run", "tests.test_cli:PLUGINS"],
     "runstream: error: tests.test_cli:PLUGINS is a str, not a pipeline (or a function "
     "returning one)"),
    (["run", "words.yaml", "--config", "nowhere.yaml"],
     "runstream: error: cannot read config file nowhere.yaml: No such file or directory"),
])
def test_usage_and_definition_errors_exit_2_with_one_line(
        capsys: pytest.CaptureFixture[str], args: list[str], message: str, cwd: Path) -> None:
    code, out, err = cli(capsys, *args)

    assert (code, out) == (2, "")
    assert error_line(err) == message.format(cwd=cwd)


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "frobnicate")

    assert code == 2
    assert "runstream: error: argument COMMAND: invalid choice: 'frobnicate'" in err


def test_invalid_yaml_config_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    Path("runstream.yaml").write_text("executor: {type: local\n")

    code, out, err = cli(capsys, "run", "words.yaml")

    assert (code, out) == (2, "")
    assert error_line(err).startswith("runstream: error: runstream.yaml:2:1: not valid YAML: ")


def test_unknown_config_key_names_it_and_the_allowed_keys(
        capsys: pytest.CaptureFixture[str]) -> None:
    Path("runstream.yaml").write_text("sink:\n  - {type: stdout}\n")

    code, _, err = cli(capsys, "run", "words.yaml")

    assert code == 2
    assert error_line(err) == ("runstream: error: runstream.yaml: unknown key 'sink'; "
                               "allowed keys: event_log, executor, limits, parameters, "
                               "run_log_store, sinks")


def test_unknown_sink_in_config_lists_installed_ones(capsys: pytest.CaptureFixture[str]) -> None:
    Path("runstream.yaml").write_text("sinks:\n  - {type: nope}\n")

    code, _, err = cli(capsys, "run", "words.yaml")

    assert code == 2
    assert error_line(err).startswith(
        "runstream: error: runstream.yaml: sinks[0]: unknown sink 'nope'; installed sinks: none "
        "(RUNSTREAM_LOAD_PLUGINS does not list runstream-file, ")


def test_unknown_task_type_lists_installed_ones(capsys: pytest.CaptureFixture[str]) -> None:
    Path("p.yaml").write_text("name: p\nsteps:\n  - {name: s, type: asyncpython}\n")

    code, _, err = cli(capsys, "run", "p.yaml")

    assert code == 2
    assert error_line(err).startswith(
        "runstream: error: p.yaml: steps[0]: unknown task type 'asyncpython'; installed task "
        "types: async-python, python (RUNSTREAM_LOAD_PLUGINS does not list runstream-file, ")


def test_step_function_that_does_not_import(capsys: pytest.CaptureFixture[str]) -> None:
    Path("p.yaml").write_text(
        "name: p\nsteps:\n  - {name: s, type: async-python, function: 'nomod_xyz:run'}\n")

    code, _, err = cli(capsys, "run", "p.yaml")

    assert code == 2
    line = error_line(err)
    assert line.startswith("runstream: error: p.yaml: steps[0] (type: async-python): 'function'")
    assert "cannot import module 'nomod_xyz' for 'nomod_xyz:run'" in line


@pytest.mark.parametrize("store", ["sqlite", "file-system"])
def test_duplicate_run_id_exits_2_and_keeps_the_first_run(
        capsys: pytest.CaptureFixture[str], store: str) -> None:
    Path("runstream.yaml").write_text(f"run_log_store: {{type: {store}}}\n")
    assert cli(capsys, "run", "words.yaml", "--run-id", "r1", "-p", "text=first run")[0] == 0

    code, out, err = cli(capsys, "run", "words.yaml", "--run-id", "r1", "-p", "text=second")

    assert (code, out) == (2, "")
    assert error_line(err) == ("runstream: error: run id 'r1' is already used; pick another "
                               "or omit it")
    code, out, _ = cli(capsys, "runs", "show", "r1")
    assert code == 0
    first = json.loads(out)
    assert first["status"] == "completed"
    assert first["parameters"] == {"text": "first run"}
    assert first["steps"]["split"]["attempts"][0]["output_parameters"] == {"count": 2}


# -- runstream plugins -------------------------------------------------------------------------


def test_plugins_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "plugins", "--json")

    assert code == 0
    plugins = json.loads(out)
    assert all(set(p) == {"name", "distribution", "version", "module", "status", "error",
                          "registered"} for p in plugins)
    assert plugins[0] == {
        "name": "runstream", "distribution": "runstream", "version": plugins[0]["version"],
        "module": "runstream._builtins", "status": "builtin", "error": None,
        "registered": {"executors": ["local"],
                       "run_log_stores": ["sqlite", "file-system", "memory"],
                       "event_logs": ["memory"]}}
    async_python = next(p for p in plugins if p["distribution"] == PLUGINS)
    assert async_python["status"] == "loaded"
    assert async_python["registered"] == {"task_types": ["async-python", "python"]}
    assert async_python["module"] == "runstream_async_python._plugin"
    assert {p["status"] for p in plugins if p["distribution"] not in {"runstream", PLUGINS}} \
        <= {"not allowed"}


def test_plugins_strict_mode_passes_when_all_load(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNSTREAM_STRICT_PLUGINS", "1")

    code, out, _ = cli(capsys, "plugins")

    assert code == 0
    assert "async-python  (runstream-async-python" in out


# -- runstream runs ----------------------------------------------------------------------------


def test_runs_ls_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "run", "words.yaml", "--run-id", "ok-1", "-q")[0] == 0
    assert cli(capsys, "run", "failing.yaml", "--run-id", "bad-1", "-q")[0] == 1

    code, out, _ = cli(capsys, "runs", "ls")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[:3] for line in lines] == [["bad-1", "failed", "failing"],
                                                    ["ok-1", "completed", "words"]]

    code, out, _ = cli(capsys, "runs", "ls", "--json", "--status", "completed")
    assert code == 0
    assert [(r["run_id"], r["status"]) for r in json.loads(out)] == [("ok-1", "completed")]

    code, out, _ = cli(capsys, "runs", "ls", "--limit", "1")
    assert [line.split()[0] for line in out.splitlines()] == ["bad-1"]

    code, out, _ = cli(capsys, "runs", "show", "bad-1")
    assert code == 0
    log = json.loads(out)
    assert log["status"] == "failed"
    assert log["error"] == {"type": "ValueError", "message": "kaput", "step": "explode"}
    assert list(log["steps"]) == ["split", "explode"]


def test_runs_ls_without_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "runs", "ls")

    assert (code, out) == (0, "")
    assert err.splitlines()[1:] == ["no runs"]  # after the line that says where runs are kept


def test_runs_show_unknown_run_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "runs", "show", "nope")

    assert (code, out) == (2, "")
    assert error_line(err) == "runstream: error: no run 'nope' in .runstream/runstream.db"


def test_runs_cancel_with_the_memory_event_log_says_it_reaches_this_process_only(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "runs", "cancel", "some-run")

    assert (code, out) == (1, "")
    line = error_line(err)
    assert line.startswith("runstream: error: no run 'some-run' in the memory event log; ")
    assert "reaches this process only" in line and "shared event log" in line


class SharedTestLog(MemoryEventLog):
    """A memory log that says it is shared (the CLI and a server would both reach it)."""

    shared: ClassVar[bool] = True


async def test_runs_cancel_sends_the_signal_through_a_shared_event_log() -> None:
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    log = runtime.event_log = SharedTestLog()
    heard: list[tuple[str, str]] = []
    log.subscribe_cancel(lambda run_id, reason: heard.append((run_id, reason)))
    out = io.StringIO()
    try:
        await log.create("r1", pipeline="p", owner=None)
        assert await cancel_run(runtime, "r1", out) == 0
        assert out.getvalue() == "cancel signal sent to run r1\n"
        assert heard == [("r1", "cancelled from the command line")]
        await log.end("r1", "completed")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert await cancel_run(runtime, "r1", out) == 1
            assert await cancel_run(runtime, "nope", out) == 1
        assert err.getvalue().splitlines() == [
            "runstream: error: run 'r1' has already ended (completed): nothing to cancel",
            "runstream: error: no run 'nope' in the memory event log; it is not running, or "
            "it ended more than the event log's ttl ago"]
    finally:
        await runtime.aclose()


def test_runs_ls_bad_limit_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "runs", "ls", "--limit", "0")

    assert code == 2
    assert error_line(err) == "runstream: error: --limit must be between 1 and 1,000,000, got 0"


# -- end to end, through the installed script ---------------------------------------------------


def shell(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env["RUNSTREAM_LOAD_PLUGINS"] = PLUGINS
    script = Path(sys.executable).with_name("runstream")
    cmd = [str(script)] if script.exists() else [
        sys.executable, "-c", "from runstream._cli import entry; entry()"]
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


def test_script_runs_a_yaml_pipeline_with_functions_from_the_working_directory(
        cwd: Path) -> None:
    # A user's own module next to the pipeline file, not installed anywhere.
    (cwd / "my_tasks.py").write_text(textwrap.dedent("""
        async def shout(text):
            for word in text.split():
                yield {"type": "word", "word": word.upper()}

        def fail():
            raise RuntimeError("disk full")
    """))
    (cwd / "mine.yaml").write_text(
        "name: mine\nsteps:\n  - {name: shout, type: async-python, function: 'my_tasks:shout'}\n"
        "  - {name: sync-fail, type: python, function: 'my_tasks:fail'}\n")

    done = shell(cwd, "run", "mine.yaml", "-p", "text=hi there", "--run-id", "e2e-1")

    assert done.returncode == 1
    assert done.stdout.splitlines() == ['{"type": "word", "word": "HI"}',
                                        '{"type": "word", "word": "THERE"}']
    assert done.stderr.splitlines() == [
        "run e2e-1 failed in step 'sync-fail': RuntimeError: disk full"]

    shown = shell(cwd, "runs", "show", "e2e-1")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["steps"]["shout"]["status"] == "completed"


def test_script_config_error_has_no_traceback(cwd: Path) -> None:
    (cwd / "runstream.yaml").write_text("run_log_store: {type: sqlite, pth: x.db}\n")

    done = shell(cwd, "run", "words.yaml")

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "runstream: error: runstream.yaml: run_log_store (type: sqlite): unknown key 'pth'; "
        "allowed keys: busy_timeout_ms, cache_kib, path"]
