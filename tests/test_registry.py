"""Registries: classes registered by reference ("module:Class") are imported on first use, and a
reference that does not import, or names something else, is a PluginError naming it."""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from runstream import (
    ComponentConfig,
    Config,
    PluginError,
    Runtime,
    Sink,
    Task,
    UnknownNameError,
    hookimpl,
    load_plugins,
)
from runstream._registry import Registry
from runstream.hookspecs import Register

_modules = itertools.count()

LAZY_MODULE = '''
from runstream import Sink, Task

class LazyTask(Task):
    async def execute(self, ctx):
        return None

class Box:
    class LazySink(Sink):
        async def send(self, event):
            pass

NOT_A_CLASS = 42
'''


@pytest.fixture
def lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a module, importable and not imported yet, defining LazyTask and
    Box.LazySink."""
    name = f"rs_lazy_{next(_modules)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(LAZY_MODULE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_names_membership_and_owner_do_not_import(lazy: str) -> None:
    tasks: Registry[Task] = Registry("task type", Task)
    tasks.register("lazy", f"{lazy}:LazyTask", owner="lazy-plugin")

    assert tasks.names() == ["lazy"]
    assert "lazy" in tasks
    assert list(tasks) == ["lazy"]
    assert tasks.owner("lazy") == "lazy-plugin"
    assert tasks.reference("lazy") == f"{lazy}:LazyTask"
    with pytest.raises(UnknownNameError, match="unknown task type 'other'; installed task "
                                               "types: lazy$"):
        tasks.get("other")
    assert lazy not in sys.modules

    cls = tasks.get("lazy")

    assert lazy in sys.modules
    assert cls is sys.modules[lazy].LazyTask
    assert tasks.get("lazy") is cls
    assert tasks.name_of(cls) == "lazy"
    assert tasks.reference("lazy") is None


def test_a_nested_class_reference(lazy: str) -> None:
    sinks: Registry[Sink] = Registry("sink", Sink)
    sinks.register("lazy", f"{lazy}:Box.LazySink")

    assert sinks.get("lazy").__qualname__ == "Box.LazySink"


def test_name_of_finds_a_reference_once_its_module_is_imported_and_imports_nothing(
        lazy: str) -> None:
    tasks: Registry[Task] = Registry("task type", Task)
    tasks.register("lazy", f"{lazy}:LazyTask")
    tasks.register("missing", "rs_no_such_module_anywhere:Thing")

    class Other(Task):
        async def execute(self, ctx: object) -> None:
            return None

    assert tasks.name_of(Other) is None
    assert lazy not in sys.modules
    module = __import__(lazy)  # the user imported the class themselves

    assert tasks.name_of(module.LazyTask) == "lazy"
    assert "rs_no_such_module_anywhere" not in sys.modules


@pytest.mark.parametrize(("ref", "why"), [
    ("rs_no_such_module_anywhere:Thing",
     "which cannot be imported: ModuleNotFoundError: No module named "
     "'rs_no_such_module_anywhere'"),
    ("{lazy}:Missing", "but module '{lazy}' has no attribute 'Missing'"),
    ("{lazy}:NOT_A_CLASS", "which is 42, not a subclass of Task"),
    ("{lazy}:Box.LazySink", "which is <class '{lazy}.Box.LazySink'>, not a subclass of Task"),
])
def test_a_bad_reference_is_a_plugin_error_naming_it(lazy: str, ref: str, why: str) -> None:
    ref = ref.format(lazy=lazy)
    tasks: Registry[Task] = Registry("task type", Task)
    tasks.register("lazy", ref, owner="lazy-plugin")

    with pytest.raises(PluginError) as caught:
        tasks.get_for_config("lazy", "runstream.yaml: steps[0]")

    assert str(caught.value) == (f"runstream.yaml: steps[0]: plugin 'lazy-plugin' registered "
                                 f"task type 'lazy' as '{ref}', {why.format(lazy=lazy)}")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "lazy" in tasks  # still listed: the next look-up says the same


@pytest.mark.parametrize("ref", ["no_colon", "a:b:c", ":Thing", "mod:", "mod-x:Thing",
                                 "mod:Thing()", "mod.:Thing"])
def test_a_malformed_reference_is_rejected_when_registered(ref: str) -> None:
    tasks: Registry[Task] = Registry("task type", Task)

    with pytest.raises(PluginError) as caught:
        tasks.register("x", ref, owner="p")
    assert str(caught.value) == (f"plugin 'p' registered task type 'x' as {ref!r}, which is not "
                                 "a 'package.module:Class' reference")
    assert "x" not in tasks


def test_a_reference_takes_its_name_like_a_class(lazy: str) -> None:
    tasks: Registry[Task] = Registry("task type", Task)
    tasks.register("lazy", f"{lazy}:LazyTask", owner="first")

    with pytest.raises(PluginError, match="task type 'lazy' is registered twice: by 'first' and "
                                          "by 'second'"):
        tasks.register("lazy", f"{lazy}:LazyTask", owner="second")
    tasks.remove_owner("first")
    assert tasks.names() == []


def test_a_runtime_imports_a_reference_its_config_names(lazy: str, tmp_path: Path) -> None:
    @hookimpl
    def register_sinks(register: Register) -> None:
        register("lazy-sink", f"{lazy}:Box.LazySink")
        register("broken-sink", "rs_no_such_module_anywhere:Thing")

    plugin = type(sys)("lazy_plugin")
    plugin.register_sinks = register_sinks  # type: ignore[attr-defined]
    config = Config(run_log_store=ComponentConfig(type="memory"))

    Runtime(config, plugins=[plugin], entry_points=False)
    assert lazy not in sys.modules

    config.sinks = [ComponentConfig(type="lazy-sink")]
    runtime = Runtime(config, plugins=[plugin], entry_points=False)
    assert type(runtime.sinks[0][1]) is sys.modules[lazy].Box.LazySink

    config.sinks = [ComponentConfig(type="broken-sink")]
    with pytest.raises(PluginError, match=r"sinks\[0\].*plugin 'lazy_plugin' registered sink "
                                          "'broken-sink' as 'rs_no_such_module_anywhere:Thing', "
                                          "which cannot be imported"):
        Runtime(config, plugins=[plugin], entry_points=False)
    assert "broken-sink" in load_plugins([plugin], entry_points=False).sinks
