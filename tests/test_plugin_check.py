"""`runstream plugins --check`: catches the mistakes a plugin author makes."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ConfigDict
from runstream import Event, Sink, Task, hookimpl, load_plugins
from runstream._cli import main
from runstream._plugin_check import check_plugins


class GoodTask(Task):
    async def execute(self, ctx: Any) -> None:
        return None


class LazyTask(Task):
    pass  # neither execute() nor run()


class GoodSink(Sink):
    async def send(self, event: Event) -> None:
        return None


class NoSendSink(Sink):
    pass


class BrokenDefaultSink(Sink):
    level: int = "loud"  # type: ignore[assignment]

    async def send(self, event: Event) -> None:
        return None

    model_config = ConfigDict(validate_default=True)


def plugin(name: str, **hooks: Any) -> SimpleNamespace:
    ns = SimpleNamespace(__name__=name)
    for hook_name, fn in hooks.items():
        setattr(ns, hook_name, hookimpl(fn))
    return ns


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


def test_a_good_plugin_passes() -> None:
    good = plugin("good",
                  register_task_types=lambda register: register("good", GoodTask),
                  register_sinks=lambda register: register("good-sink", GoodSink))
    checks = by_name(check_plugins(load_plugins([good], entry_points=False)))
    assert checks["good"].ok and checks["runstream"].ok


def test_mistakes_are_reported() -> None:
    typo = plugin("typo", register_task_type=lambda register: None)
    lazy = plugin("lazy", register_task_types=lambda register: register("lazy", LazyTask),
                  register_sinks=lambda register: register("nosend", NoSendSink))
    broken = plugin("broken", register_sinks=lambda register: register("bd", BrokenDefaultSink))
    clash = plugin("clash", register_sinks=lambda register: register("nosend", GoodSink))
    checks = by_name(check_plugins(load_plugins([typo, lazy, broken, clash],
                                                entry_points=False)))
    assert "unknown hook 'register_task_type'" in checks["typo"].problems[0]
    assert any("implements neither execute() nor run()" in p for p in checks["lazy"].problems)
    assert any("sink 'nosend' does not implement send()" in p for p in checks["lazy"].problems)
    assert any("does not construct with its defaults" in p for p in checks["broken"].problems)
    assert any("registered twice" in p for p in checks["clash"].problems)


def test_references_are_imported_and_checked() -> None:
    refs = plugin("refs",
                  register_task_types=lambda register: register(
                      "good", f"{__name__}:GoodTask"),
                  register_sinks=lambda register: register("nosend", f"{__name__}:NoSendSink"),
                  register_event_logs=lambda register: register(
                      "gone", "rs_no_such_module_anywhere:Log"))
    checks = by_name(check_plugins(load_plugins([refs], entry_points=False)))
    assert checks["refs"].problems == [
        "sink 'nosend' does not implement send()",
        "plugin 'refs' registered event log 'gone' as 'rs_no_such_module_anywhere:Log', which "
        "cannot be imported: ModuleNotFoundError: No module named 'rs_no_such_module_anywhere'"]


def test_cli_check_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--check"]) == 0
    out = capsys.readouterr().out
    assert "async-python  (runstream-async-python)  ok" in out
    assert main(["plugins", "--check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(entry["ok"] for entry in data)


def test_runs_without_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs"]) == 2
    assert "runs needs a subcommand" in capsys.readouterr().err
