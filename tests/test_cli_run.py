"""``runstream run`` as a person at a terminal and a shell pipeline meet it (issue 10, item 13):
parameters no step reads, a closed stdout, pretty output on a terminal, imports relative to the
working directory, where runs are kept, and the config file variable.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import cli, error_line

PLUGINS = "runstream-async-python,runstream-mock-llm"


async def greet(name: str, punctuation: str = "!") -> AsyncIterator[dict[str, Any]]:
    yield {"type": "greeting", "text": f"Hello {name}{punctuation}"}


async def anything(**params: Any) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "params", "names": sorted(params)}


async def through_context() -> AsyncIterator[dict[str, Any]]:
    from runstream import current_task_context

    yield {"type": "name", "name": current_task_context().parameters.get("name")}


GREET = """\
name: greet
steps:
  - {name: hello, type: async-python, function: "tests.test_cli_run:greet"}
  - name: route
    type: conditional
    parameter: mode
    branches:
      llm: [{name: ask, type: mock-llm, prompt_parameter: question, tokens_per_second: 0}]
    default: [{name: each, type: map, over: items, iterate_as: it, branch: [
      {name: echo, type: async-python, function: "tests.test_cli_run:greet"}]}]
"""


@pytest.fixture(autouse=True)
def cwd(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("RUNSTREAM_LOAD_PLUGINS", PLUGINS)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (in_tmp_cwd / "greet.yaml").write_text(GREET)
    yield in_tmp_cwd


# -- --param names that no step reads -----------------------------------------------------------


def test_a_param_no_step_reads_is_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "run", "greet.yaml", "-p", "nme=Ada", "-p", "name=Ada",
                         "-p", "mode=x", "-p", "items=[]", "--format", "jsonl")

    assert code == 0
    assert json.loads(out.splitlines()[0]) == {"type": "greeting", "text": "Hello Ada!"}
    warning, status = err.splitlines()
    assert warning == (
        "runstream: warning: --param 'nme': pipeline 'greet' has no parameter 'nme' (it "
        "reads: full_text, it, items, mode, name, punctuation, question); it is ignored (--strict "
        "makes this an error)")
    assert status.startswith("run ")


def test_strict_makes_it_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "run", "greet.yaml", "-p", "name=Ada", "-p", "nme=Ada",
                         "--strict")

    assert (code, out) == (2, "")
    assert error_line(err) == (
        "runstream: error: --param 'nme': pipeline 'greet' has no parameter 'nme' (it reads: "
        "full_text, it, items, mode, name, punctuation, question); check the spelling, or drop "
        "--strict")
    assert not Path(".runstream").exists()  # refused before any run started


def test_params_every_step_reads_pass_strict(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", "greet.yaml", "--strict", "-q", "-p", "name=Ada",
                       "-p", "mode=llm", "-p", "question=why?", "-p", "punctuation=?")

    assert code == 0
    assert error_line(err).startswith("run ")


@pytest.mark.parametrize("function", ["anything", "through_context"])
def test_no_warning_when_a_step_may_read_any_parameter(
        capsys: pytest.CaptureFixture[str], function: str) -> None:
    Path("p.yaml").write_text(textwrap.dedent(f"""\
        name: p
        steps:
          - {{name: a, type: async-python, function: "tests.test_cli_run:greet"}}
          - {{name: b, type: async-python, function: "tests.test_cli_run:{function}"}}
    """))

    code, _, err = cli(capsys, "run", "p.yaml", "--strict", "-q", "-p", "name=x", "-p", "nme=y")

    assert code == 0
    assert error_line(err).startswith("run ")


# -- a closed stdout ----------------------------------------------------------------------------

TICKS = """\
import asyncio

async def ticks(n: int = 100_000, pause: float = 0.001):
    for i in range(n):
        yield {"type": "tick", "i": i}
        await asyncio.sleep(pause)
"""


def script(cwd: Path, *args: str) -> list[str]:
    """The command line of the installed script, with a slow pipeline in ``cwd``."""
    (cwd / "ticks.py").write_text(TICKS)
    (cwd / "ticks.yaml").write_text(
        "name: ticks\nsteps: [{name: t, type: async-python, function: 'ticks:ticks'}]\n")
    exe = Path(sys.executable).with_name("runstream")
    return [str(exe), *args] if exe.exists() else [
        sys.executable, "-c", "from runstream._cli import entry; entry()", *args]


def run_log(capsys: pytest.CaptureFixture[str], run_id: str) -> dict[str, Any]:
    code, out, _ = cli(capsys, "runs", "show", run_id)
    assert code == 0
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.parametrize("extra", [[], ["-q"], ["--config", "sink.yaml"]],
                         ids=["printing", "quiet", "stdout-sink"])
def test_closing_stdout_cancels_the_run(
        cwd: Path, capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    """`runstream run ... | head -2`: the run is cancelled ("stdout closed"), exit 141, and
    stderr holds that one line: no BrokenPipeError warning, no traceback."""
    (cwd / "sink.yaml").write_text("sinks: [{type: stdout, format: jsonl}]\n")
    env = {**os.environ, "RUNSTREAM_LOAD_PLUGINS": f"{PLUGINS},runstream-stdout"}
    cmd = script(cwd, "run", "ticks.yaml", "--run-id", "piped", "-p", "pause=0.01", *extra)
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        if "-q" not in extra:
            for _ in range(2):  # what `head -2` reads before it exits
                assert proc.stdout.readline()
        proc.stdout.close()
        try:
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:  # the run went on: stop it, so the test fails, not hangs
                proc.kill()
        err = proc.stderr.read()

    assert code == 141
    assert err.splitlines() == ["run piped cancelled: stdout closed"]
    log = run_log(capsys, "piped")
    assert log["status"] == "cancelled"
    assert log["error"]["message"] == "stdout closed"


# -- pretty on a terminal, JSON lines in a pipe -------------------------------------------------


def on_a_terminal(cwd: Path, *args: str) -> tuple[int, str]:
    """Run the script with stdout on a pseudo-terminal, as a person's shell does."""
    master, slave = pty.openpty()
    cmd = script(cwd, *args)
    with subprocess.Popen(cmd, cwd=cwd, stdout=slave, stderr=subprocess.PIPE,
                          env={**os.environ, "RUNSTREAM_LOAD_PLUGINS": PLUGINS,
                               "NO_COLOR": "1"}) as proc:
        os.close(slave)
        chunks = []
        while select.select([master], [], [], 30)[0]:  # bounded: a stuck run fails the test
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        try:
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    os.close(master)
    return code, b"".join(chunks).decode().replace("\r\n", "\n")


def test_a_terminal_gets_readable_lines(cwd: Path) -> None:
    code, out = on_a_terminal(cwd, "run", "ticks.yaml", "-p", "n=2", "-p", "pause=0")

    assert code == 0
    assert out.splitlines() == ["t  tick i=0", "t  tick i=1"]


def test_format_jsonl_on_a_terminal(cwd: Path) -> None:
    code, out = on_a_terminal(cwd, "run", "ticks.yaml", "-p", "n=2", "-p", "pause=0",
                              "--format", "jsonl")

    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"type": "tick", "i": 0}, {"type": "tick", "i": 1}]


def test_a_pipe_gets_json_lines_and_format_pretty_escapes_control_characters(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "run", "greet.yaml", "-p", "name=Ada\x1b[2J\nBob",
                       "-p", "mode=x", "-p", "items=[]")
    assert code == 0
    assert json.loads(out.splitlines()[0])["text"] == "Hello Ada\x1b[2J\nBob!"

    code, out, _ = cli(capsys, "run", "greet.yaml", "-p", "name=Ada\x1b[2J\nBob",
                       "-p", "mode=x", "-p", "items=[]", "--format", "pretty")
    assert code == 0
    assert out.splitlines()[0] == "hello  greeting text=Hello Ada\\x1b[2J\\nBob!"


# -- where modules and runs are found ------------------------------------------------------------


def test_a_module_not_found_names_the_working_directory(
        capsys: pytest.CaptureFixture[str], cwd: Path) -> None:
    code, _, err = cli(capsys, "run", "examples_xyz.hello:build")

    assert code == 2
    assert error_line(err) == (
        "runstream: error: cannot import module 'examples_xyz.hello' for "
        "'examples_xyz.hello:build': No module named 'examples_xyz' ('examples_xyz' is looked "
        f"up relative to the current working directory, {cwd}, and PYTHONPATH: run from the "
        "project root or add it to PYTHONPATH)")


def test_runs_ls_says_where_runs_are_kept(capsys: pytest.CaptureFixture[str],
                                          cwd: Path) -> None:
    code, _, err = cli(capsys, "runs", "ls")
    assert code == 0
    assert err.splitlines() == [
        f"runs in the sqlite store at {cwd}/.runstream/runstream.db (no config file: defaults "
        f"for {cwd})", "no runs"]

    Path("runstream.yaml").write_text("run_log_store: {type: file-system, path: runs}\n")
    code, _, err = cli(capsys, "runs", "ls", "--json")
    assert code == 0
    assert err.splitlines()[0] == (f"runs in the file-system store at {cwd}/runs (config "
                                   f"{cwd}/runstream.yaml)")


def test_a_missing_config_file_variable_is_named(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNSTREAM_CONFIGURATION_FILE", "conf/nope.yaml")

    for args in (["run", "greet.yaml"], ["runs", "ls"]):
        code, out, err = cli(capsys, *args)

        assert (code, out) == (2, "")
        assert error_line(err) == (
            "runstream: error: $RUNSTREAM_CONFIGURATION_FILE names the config file "
            "conf/nope.yaml, which does not exist; fix the path or unset the variable")
