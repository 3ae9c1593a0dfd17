"""Parameters: explicit dict > RUNSTREAM_PRM_<name> (JSON, read at call time, only when asked)
> parameters file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    ParameterError,
    ParametersConfig,
    Runtime,
    resolve_parameters,
)
from runstream._params import parse_value
from runstream_async_python import AsyncPythonTask


async def show(a: Any, b: Any, c: Any) -> dict[str, Any]:
    return {"a": a, "b": b, "c": c}


def test_precedence(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("a: from-file\nb: from-file\nc: from-file\n")
    env = {"RUNSTREAM_PRM_b": '"from-env"', "RUNSTREAM_PRM_c": '"from-env"', "OTHER": "x"}
    got = resolve_parameters({"c": "explicit"}, f, environ=env, environment=True)
    assert got == {"a": "from-file", "b": "from-env", "c": "explicit"}


def test_env_values_are_json_decoded_and_plain_text_stays_text() -> None:
    env = {"RUNSTREAM_PRM_n": "42", "RUNSTREAM_PRM_l": "[1, 2]", "RUNSTREAM_PRM_s": "hello",
           "RUNSTREAM_PRM_q": '"42"', "RUNSTREAM_PRM_": "ignored"}
    assert resolve_parameters(environ=env, environment=True) == {
        "n": 42, "l": [1, 2], "s": "hello", "q": "42"}


async def test_env_is_read_at_call_time(runtime: Runtime, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    p = AsyncPipeline("p", [AsyncPythonTask(name="s", function=show, returns=["out"])])
    monkeypatch.setenv("RUNSTREAM_PRM_a", "1")
    monkeypatch.setenv("RUNSTREAM_PRM_b", "2")
    log1 = await p.execute({"c": 3}, config=runtime, environment=True)
    monkeypatch.setenv("RUNSTREAM_PRM_a", "10")
    log2 = await p.execute({"c": 3}, config=runtime, environment=["a", "b"])
    assert log1.steps["s"].attempts[0].output_parameters["out"]["a"] == 1
    assert log2.steps["s"].attempts[0].output_parameters["out"]["a"] == 10


def test_the_environment_is_read_only_when_asked() -> None:
    env = {"RUNSTREAM_PRM_api_key": "sk-server-secret", "RUNSTREAM_PRM_n": "1"}
    assert resolve_parameters({"prompt": "hi"}, environ=env) == {"prompt": "hi"}
    assert resolve_parameters(environ=env, environment=False) == {}
    assert resolve_parameters(environ=env, environment=["n", "absent"]) == {"n": 1}
    assert resolve_parameters(environ=env, environment=True) == {
        "api_key": "sk-server-secret", "n": 1}
    with pytest.raises(ParameterError, match=r"write \['n'\]"):
        resolve_parameters(environ=env, environment="n")


async def test_runs_do_not_record_the_servers_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server's RUNSTREAM_PRM_* variables (an API key, say) stay out of every run that did
    not ask for them; a run asks with environment=, or the config lists names."""
    monkeypatch.setenv("RUNSTREAM_PRM_api_key", "sk-server-secret")
    monkeypatch.setenv("RUNSTREAM_PRM_a", "1")
    p = AsyncPipeline("p", [AsyncPythonTask(name="s", function=show, returns=["out"])])
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    try:
        log = await p.execute({"a": 0, "b": 2, "c": 3}, config=runtime)
        assert "api_key" not in log.parameters
        assert "sk-server-secret" not in log.model_dump_json()
        asked = await p.execute({"b": 2, "c": 3}, config=runtime, environment=["a"])
        assert asked.parameters == {"a": 1, "b": 2, "c": 3}
    finally:
        await runtime.aclose()
    listed = Runtime(Config(run_log_store=ComponentConfig(type="memory"),
                            parameters=ParametersConfig(environment=["a"])))
    try:
        log = await p.execute({"b": 2, "c": 3}, config=listed)
        assert log.parameters == {"a": 1, "b": 2, "c": 3}  # listed by name: read
        log = await p.execute({"b": 2, "c": 3}, config=listed, environment=True)
        assert log.parameters["api_key"] == "sk-server-secret"  # the caller asked for all
    finally:
        await listed.aclose()


def test_parameters_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="cannot read parameters file"):
        resolve_parameters(parameters_file=tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    with pytest.raises(ParameterError, match="not valid YAML"):
        resolve_parameters(parameters_file=bad, environ={})
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="mapping of names to values"):
        resolve_parameters(parameters_file=lst, environ={})


def test_explicit_parameters_must_be_a_mapping_of_strings() -> None:
    with pytest.raises(ParameterError, match="mapping"):
        resolve_parameters([("a", 1)], environ={})  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="names must be strings"):
        resolve_parameters({1: "x"}, environ={})  # type: ignore[dict-item]


def test_yaml_file_cannot_construct_objects(tmp_path: Path) -> None:
    f = tmp_path / "evil.yaml"
    f.write_text("a: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ParameterError, match="not valid YAML"):
        resolve_parameters(parameters_file=f, environ={})


@given(st.text())
def test_parse_value_never_raises(text: str) -> None:
    value = parse_value(text)
    assert value is not None or text.strip() == "null"


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(), inner, max_size=3), max_leaves=8))
def test_parse_value_round_trips_json(value: Any) -> None:
    import json

    assert parse_value(json.dumps(value)) == value
