"""Bad input from a user's files and flags: one line naming the file, key or value, exit 2.

Each example was once a traceback (issue 10, item 12); the hypothesis tests cover the classes
they belong to: any YAML text or document, as a config or a pipeline, ends as a pipeline or a
ConfigError / PipelineDefinitionError, never anything else.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st
from runstream import (
    ComponentConfig,
    Config,
    ConfigError,
    ParameterError,
    PipelineDefinitionError,
    Runtime,
    pipeline_from_dict,
)
from runstream._cli import main
from runstream._params import resolve_parameters

STEP = '{name: s, type: async-python, function: "tests.test_cli:words"}'


@pytest.fixture(autouse=True)
def cwd(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("RUNSTREAM_LOAD_PLUGINS", "runstream-async-python")
    monkeypatch.setattr(sys, "path", list(sys.path))
    (in_tmp_cwd / "ok.yaml").write_text(f"name: ok\nsteps: [{STEP}]\n")
    yield in_tmp_cwd


def one_error_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert (code, out) == (2, ""), err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def nested_parallel(depth: int) -> str:
    """A pipeline of ``depth`` parallel steps, each the only branch of the one above it."""
    lines, indent = ["name: deep", "steps:"], ""
    for i in range(depth):
        lines += [f"{indent}  - name: p{i}", f"{indent}    type: parallel",
                  f"{indent}    branches:", f"{indent}      a:"]
        indent += "      "
    lines.append(f"{indent}  - {STEP}")
    return "\n".join(lines) + "\n"


PIPELINES = [
    # (file content, what the line says after "runstream: error: p.yaml")
    ("name: a\nsteps: [{name: b, type: [parallel]}]\n",
     ": steps[0]: 'type' must be the name of a task type (a string), got a list: ['parallel']"),
    ("name: a\nsteps: [{name: b, type: {x: 1}}]\n",
     ": steps[0]: 'type' must be the name of a task type (a string), got a dict"),
    (nested_parallel(200), ": nested too deeply to read (at most 64 levels"),
    ("name: a\nsteps: &s [{name: b, type: parallel, branches: {a: *s}}]\n",
     ": steps[0].branches.a refers back to a value that contains it"),
    ("name: a\nsteps: [" + STEP[:-1] + ", timeout: " + "9" * 5000 + "}]\n",
     ": a number has too many digits (at most 4300); quote it if it is text"),
    ("name: a\nsteps: [" + STEP[:-1] + ", timeout: .inf}]\n",
     ": steps[0] (type: async-python): 'timeout': Input should be a finite number"),
    ("name: a\nsteps: [" + STEP[:-1] + ", timeout: " + "9" * 400 + "}]\n",
     ": steps[0] (type: async-python): 'timeout': Input should be a"),
    ("name: a\nsteps: [{name: p, type: parallel, fail_fast: 'no', branches: {a: [" + STEP
     + "]}}]\n", ": steps[0] (type: parallel): 'fail_fast' must be true or false, got 'no'"),
    ("name: a\nsteps: [unclosed\n",
     ":3:1: not valid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow "
     "sequence started at line 2, column 8)"),
    ("name: a\n  steps: x\n", ":2:8: not valid YAML: mapping values are not allowed here"),
    ("name: a\nd: &d0 [a, a, a, a, a, a, a, a, a, a]\n" + "".join(
        f"d{i}: &d{i} [" + ", ".join([f"*d{i - 1}"] * 10) + "]\n" for i in range(1, 7)),
     ": expands to more than 1,000,000 values through its aliases"),
]


@pytest.mark.parametrize(("text", "message"), PIPELINES)
def test_a_bad_pipeline_file_is_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    Path("p.yaml").write_text(text)

    line = one_error_line(capsys, "run", "p.yaml")

    assert line.startswith(f"runstream: error: p.yaml{message}"), line


def test_composite_steps_nest_within_the_limit(capsys: pytest.CaptureFixture[str]) -> None:
    Path("p.yaml").write_text(nested_parallel(15))

    assert main(["run", "p.yaml", "-q"]) == 0
    assert "completed" in capsys.readouterr().err


CONFIGS = [
    ('run_log_store: {type: sqlite, path: "a\\0b"}\n',
     "run_log_store (type: sqlite): 'path': the path contains a NUL character"),
    ("run_log_store: {type: sqlite, path: adir}\n",
     "run_log_store (type: sqlite): 'path': adir is a directory; give the database file, e.g. "
     "adir/runstream.db"),
    ("run_log_store: {type: sqlite, path: afile/runs.db}\n",
     "run_log_store (type: sqlite): 'path': afile is a file, so afile/runs.db cannot be created"),
    ("run_log_store: {type: file-system, path: afile}\n",
     "run_log_store (type: file-system): 'path': afile is a file, not a directory"),
    ('run_log_store: {type: file-system, path: "x\\0"}\n',
     "run_log_store (type: file-system): 'path': the path contains a NUL character"),
    ("run_log_store: {type: sqlite, busy_timeout_ms: 99999999999999999999}\n",
     "run_log_store (type: sqlite): 'busy_timeout_ms': Input should be less than or equal to"),
    ("limits: {cancel_grace_period: .inf}\n",
     "'limits.cancel_grace_period': Input should be a finite number"),
    ("limits: {store_save_timeout: .nan}\n",
     "'limits.store_save_timeout': Input should be a finite number"),
    ("limits: {store_timeout: " + "9" * 5000 + "}\n",
     "a number has too many digits"),
    ("sinks: &s [{type: x, more: *s}]\n", "sinks[0].more refers back to a value that contains it"),
]


@pytest.mark.parametrize(("text", "message"), CONFIGS)
def test_a_bad_config_is_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    Path("adir").mkdir()
    Path("afile").write_text("not a directory\n")
    Path("bad.yaml").write_text(text)

    line = one_error_line(capsys, "run", "ok.yaml", "--config", "bad.yaml")

    assert line.startswith(f"runstream: error: bad.yaml: {message}"), line


def test_runs_ls_limit_too_big(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, "runs", "ls", "--limit", "99999999999999999999")

    assert line == ("runstream: error: --limit must be between 1 and 1,000,000, got "
                    "99999999999999999999")


def test_a_param_nested_too_deeply(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, "run", "ok.yaml", "-p", "text=" + "[" * 100_000)

    assert line.startswith("runstream: error: --param 'text': the value is nested too deeply")


def test_a_parameters_file_with_a_recursive_alias() -> None:
    Path("params.yaml").write_text("a: &a [*a]\n")

    with pytest.raises(ParameterError, match=r"^parameters file params\.yaml: a\[0\] refers back "
                                             "to a value that contains it"):
        resolve_parameters(parameters_file="params.yaml")


def test_file_system_store_path_made_a_file_later_is_not_a_used_run_id(
        capsys: pytest.CaptureFixture[str]) -> None:
    Path("runstream.yaml").write_text("run_log_store: {type: file-system, path: runs}\n")
    assert main(["run", "ok.yaml", "-q"]) == 0
    capsys.readouterr()
    shutil.rmtree("runs")  # its run files and process leases
    Path("runs").write_text("")  # now a file: the config check passed long ago in a server

    from runstream._runlog import RunLog, now
    from runstream._store_fs import FileSystemStore

    store = FileSystemStore.model_construct(path="runs")
    log = RunLog(run_id="r1", pipeline="p", status="running", started=now(), process="x")
    with pytest.raises(Exception, match="runs is not a directory") as info:
        store._write(log, exclusive=True)
    assert type(info.value).__name__ == "StoreError"


# -- the classes, with hypothesis --------------------------------------------------------------

RUNTIME = Runtime(Config(run_log_store=ComponentConfig(type="memory")))

scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
           | st.sampled_from(["parallel", "map", "conditional", "async-python", "python",
                              "tests.test_cli:words", "item", "a"]))
keys = st.sampled_from(["name", "type", "steps", "branches", "branch", "over", "iterate_as",
                        "parameter", "default", "on_failure", "merge", "fail_fast", "returns",
                        "max_concurrency", "function", "timeout", "retry", "a", "b"])
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_document_is_a_pipeline_or_a_definition_error(doc: object) -> None:
    try:
        pipeline_from_dict(doc, RUNTIME, "p.yaml")
    except (PipelineDefinitionError, ConfigError) as exc:
        assert str(exc).startswith("p.yaml") and "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["name: x\n", "steps:\n", "  - ", "[", "]", "{", "}", "&a ",
                                 "*a ", "type: parallel", "branches: ", "a: ", ", ", "\t",
                                 "'", '"', "9" * 4400, "1e400", ".inf", "!!python/name:os", "\0",
                                 "? ", "- ", "---\n", "%YAML 1.1\n", "\n"]), max_size=30))
def test_any_text_is_a_pipeline_or_one_line_error(parts: list[str]) -> None:
    text = "".join(parts)
    try:
        pipeline_from_dict(_load(text, PipelineDefinitionError), RUNTIME, "p.yaml")
    except (PipelineDefinitionError, ConfigError) as exc:
        assert "\n" not in str(exc)
    try:
        Config.from_yaml(text, "c.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("c.yaml") and "\n" not in str(exc)


def _load(text: str, error: type[PipelineDefinitionError]) -> object:
    from runstream._yaml_load import load_yaml

    return load_yaml(text, "p.yaml", error)


@settings(max_examples=100, deadline=None)
@given(documents, st.integers(min_value=0, max_value=3))
def test_documents_with_aliases_and_cycles_are_checked(doc: object, how: int) -> None:
    """A document that refers to itself, through YAML anchors and aliases."""
    from runstream._yaml_load import load_yaml

    text = yaml.safe_dump({"name": "x", "steps": [doc, doc]}, default_flow_style=True)
    if how == 1:
        text = f"name: x\nsteps: &s [{{name: p, type: parallel, branches: {{a: *s}}}}, {text}]"
    elif how == 2:
        text = "steps: &s [" + "[" * 70 + "*s" + "]" * 71 + "\nname: x\n"
    try:
        pipeline_from_dict(load_yaml(text, "p.yaml", PipelineDefinitionError), RUNTIME,
                           "p.yaml")
    except (PipelineDefinitionError, ConfigError) as exc:
        assert "\n" not in str(exc)


def test_an_environment_parameter_nested_too_deeply_is_named() -> None:
    with pytest.raises(ParameterError, match=r"^\$RUNSTREAM_PRM_deep: the value is nested too "
                                             r"deeply"):
        resolve_parameters(environ={"RUNSTREAM_PRM_deep": "[" * 100_000}, environment=True)
