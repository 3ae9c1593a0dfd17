"""runstream.yaml: validated, with errors that name the bad key and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from runstream import Config, ConfigError, Runtime, UnknownNameError
from runstream._config import find_config_file


def test_defaults() -> None:
    cfg = Config()
    assert cfg.executor.type == "local"
    assert cfg.run_log_store.type == "sqlite"
    assert cfg.sinks == []


def test_full_config_from_yaml() -> None:
    cfg = Config.from_yaml(
        "executor: {type: local}\n"
        "run_log_store: {type: file-system, path: /tmp/x}\n"
        "sinks:\n  - {type: stdout, format: jsonl}\n")
    assert cfg.run_log_store.options() == {"path": "/tmp/x"}
    assert cfg.sinks[0].type == "stdout"


@pytest.mark.parametrize(("text", "message"), [
    ("execuotr: {type: local}\n", "unknown key 'execuotr'; allowed keys: event_log, executor, "
                                 "limits, parameters, run_log_store, sinks"),
    ("limits: {max_event_byte: 10}\n", "unknown key 'limits.max_event_byte'; allowed keys: "
                                        "cancel_grace_period, loop_block_warning, "
                                        "max_concurrent_runs"),
    ("run_log_store: {path: x}\n", "missing required key 'run_log_store.type'"),
    ("sinks: {type: stdout}\n", "'sinks'"),
    ("sinks:\n  - {format: jsonl}\n", "missing required key 'sinks[0].type'"),
    ("- a\n- b\n", "must be a mapping"),
    ("executor: [unclosed\n", "not valid YAML"),
])
def test_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_yaml(text, "runstream.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("runstream.yaml:")
    assert "\n" not in str(info.value)


def test_unknown_component_lists_installed(in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "runstream.yaml").write_text("run_log_store: {type: mongodb}\n")
    with pytest.raises(UnknownNameError) as info:
        Runtime()
    msg = str(info.value)
    assert "run_log_store" in msg and "unknown run log store 'mongodb'" in msg
    assert "file-system, memory, postgres, sqlite" in msg


def test_bad_component_option_names_entry_and_allowed(in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "runstream.yaml").write_text("run_log_store: {type: memory, max_run: 3}\n")
    with pytest.raises(ConfigError) as info:
        Runtime()
    msg = str(info.value)
    assert "run_log_store (type: memory)" in msg
    assert "unknown key 'max_run'; allowed keys: max_runs" in msg


def test_config_file_lookup(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_config_file() is None
    (in_tmp_cwd / "runstream.yaml").write_text("{}\n")
    assert find_config_file() == Path("runstream.yaml")
    other = in_tmp_cwd / "other.yaml"
    other.write_text("run_log_store: {type: memory}\n")
    monkeypatch.setenv("RUNSTREAM_CONFIGURATION_FILE", str(other))
    assert find_config_file() == other
    assert Runtime().config.run_log_store.type == "memory"
    assert find_config_file("explicit.yaml") == Path("explicit.yaml")


def test_missing_config_file_is_a_config_error(in_tmp_cwd: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file nope\.yaml"):
        Runtime("nope.yaml")


def test_yaml_tags_cannot_construct_objects() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.from_yaml("executor: !!python/object/apply:os.system ['echo hi']\n")


yaml_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300) | st.floats()
    | st.text(max_size=10) | st.sampled_from(["sqlite", "file-system", "memory", "a\0b", "."]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["executor", "run_log_store", "sinks", "type", "path", "x", "limits",
                         "cancel_grace_period", "store_timeout", "max_event_bytes",
                         "busy_timeout_ms"]) | st.text(max_size=5), inner, max_size=4),
    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(yaml_like)
def test_any_document_is_a_config_or_a_config_error(doc: object) -> None:
    """Also builds the runtime: the components' own options are validated there."""
    import yaml

    text = yaml.safe_dump(doc)
    try:
        config = Config.from_yaml(text, "c.yaml")
        if config.run_log_store.type != "sqlite" or "path" in config.run_log_store.options():
            Runtime(config, entry_points=False)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="{}[],:&*!-?'\"#|>%@`9.e \t\nab\0", max_size=60))
def test_any_text_is_a_config_or_a_one_line_config_error(text: str) -> None:
    try:
        Config.from_yaml(text, "c.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("c.yaml") and "\n" not in str(exc)


def test_a_bad_value_is_quoted_without_the_password_of_a_url_in_it() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_yaml("limits: {max_concurrent_runs: 'postgresql://u:s3cret@db/x'}", "c.yaml")
    assert "s3cret" not in str(caught.value)
    assert "postgresql://u:***@db/x" in str(caught.value)
