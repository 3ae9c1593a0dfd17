"""`runstream runs events RUN_ID`: a run's events read back from the file sink's files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from runstream import Event
from runstream._cli import main
from runstream_file import read_events

pytestmark = pytest.mark.usefixtures("in_tmp_cwd")

PIPELINE_YAML = """\
name: hello
steps:
  - name: llm
    type: mock-llm
    thinking_delay: 0
    generating_delay: 0
    tokens_per_second: 0
    response: "Hello there world"
"""


def run_pipeline(capsys: pytest.CaptureFixture[str], config: str) -> str:
    """Run the pipeline through the CLI with `config`; return the run id."""
    Path("pipeline.yaml").write_text(PIPELINE_YAML)
    Path("runstream.yaml").write_text("run_log_store: {type: memory}\n" + config)
    assert main(["run", "pipeline.yaml", "--config", "runstream.yaml", "-p", "prompt=hi",
                 "-q"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("run ")
    return err.split()[1]


def events_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["runs", "events", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_prints_the_runs_events_from_the_configured_file_sink(
        capsys: pytest.CaptureFixture[str]) -> None:
    run_id = run_pipeline(capsys, "sinks: [{type: file, path: 'ev/{pipeline}/{run_id}.jsonl'}]\n")
    code, out, err = events_cli(capsys, run_id, "--config", "runstream.yaml")
    assert (code, err) == (0, "")
    printed = [Event.model_validate_json(line) for line in out.splitlines()]
    assert printed == list(read_events(f"ev/hello/{run_id}.jsonl"))
    assert [e.seq for e in printed] == list(range(1, len(printed) + 1))
    assert printed[0].type == "run.started" and printed[-1].type == "run.completed"
    assert "".join(e.data.get("text", "") for e in printed) == "Hello there world"


def test_default_path_without_config(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = run_pipeline(capsys, "sinks: [{type: file}]\n")
    os.remove("runstream.yaml")
    code, out, _ = events_cli(capsys, run_id)
    assert code == 0
    assert [Event.model_validate_json(line) for line in out.splitlines()] == list(
        read_events(f".runstream/events/{run_id}.jsonl"))


def test_path_option_wins_over_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = run_pipeline(capsys, "sinks: [{type: file, path: 'custom/{date}/{run_id}.jsonl'}]\n")
    Path("runstream.yaml").write_text("run_log_store: {type: memory}\n"
                                      "sinks: [{type: file, path: 'elsewhere/{run_id}.jsonl'}]\n")
    code, _, err = events_cli(capsys, run_id, "--config", "runstream.yaml")
    assert code == 2
    assert err.startswith(f"runstream: error: no event file for run {run_id}")
    code, out, _ = events_cli(capsys, run_id, "--config", "runstream.yaml",
                              "--path", "custom/{date}/{run_id}.jsonl")
    assert code == 0
    assert len(out.splitlines()) > 3


def test_a_truncated_last_line_is_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = run_pipeline(capsys, "sinks: [{type: file}]\n")
    path = Path(f".runstream/events/{run_id}.jsonl")
    complete = len(path.read_bytes().splitlines())
    with path.open("ab") as fh:
        fh.write(b'{"v":1,"run_id":"' + run_id.encode())
    code, out, _ = events_cli(capsys, run_id, "--config", "runstream.yaml")
    assert code == 0
    assert len(out.splitlines()) == complete


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "runstream: error: no event file for run nope (looked for "
               "'.runstream/events/{run_id}.jsonl' inside '.runstream/events'"),
    (["../etc/passwd"], "runstream: error: invalid run id '../etc/passwd'"),
    (["r1", "--path", "../x/{run_id}.jsonl"],
     "runstream: error: --path: 'path': path template '../x/{run_id}.jsonl' "
     "leads outside its base directory '.'"),
    (["r1", "--config", "missing.yaml"], "runstream: error: cannot read config file "
                                         "missing.yaml"),
])
def test_errors_are_one_line_with_exit_code_2(capsys: pytest.CaptureFixture[str],
                                              args: list[str], message: str) -> None:
    code, out, err = events_cli(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1 and "Traceback" not in err


def test_run_without_events_in_a_shared_file(capsys: pytest.CaptureFixture[str]) -> None:
    run_pipeline(capsys, "sinks: [{type: file, path: 'ev/all.jsonl'}]\n")
    code, _, err = events_cli(capsys, "other-run", "--config", "runstream.yaml")
    assert code == 2
    assert err == "runstream: error: no events of run other-run in its event file\n"


def test_without_the_file_plugin(capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNSTREAM_BLOCK_PLUGINS", "runstream-file")
    code, _, err = events_cli(capsys, "r1")
    assert code == 2
    assert err == ("runstream: error: reading event files needs the 'file' sink, which is not "
                   "installed; install runstream-file (pip install runstream-file)\n")


def test_through_the_installed_command(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = run_pipeline(capsys, "sinks: [{type: file}]\n")
    command = Path(sys.executable).parent / "runstream"
    done = subprocess.run([str(command), "runs", "events", run_id, "--config",
                           "runstream.yaml"], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert [Event.model_validate_json(line) for line in done.stdout.splitlines()] == list(
        read_events(f".runstream/events/{run_id}.jsonl"))


def test_the_cli_does_not_import_the_file_plugin() -> None:
    code = ("import sys, runstream._cli as cli; "
            "assert 'runstream_file' not in sys.modules, 'imported at import time'; "
            "cli.build_parser(); assert 'runstream_file' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
