"""Plugin registration (explicit plugins, no entry points) and how sinks from plugins behave."""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    ConfigError,
    Event,
    LocalExecutor,
    PluginError,
    RunLog,
    Runtime,
    Sink,
    Task,
    TaskContext,
    UnknownNameError,
    hookimpl,
    load_plugins,
    pipeline_from_dict,
)
from runstream.hookspecs import Register
from runstream.testing import make_runtime, memory_config, read_jsonl

# -- helpers -----------------------------------------------------------------------------------


def make_plugin(name: str, **hooks: Callable[..., Any]) -> types.ModuleType:
    """A plugin module named ``name`` with the given hook implementations."""
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


class Words(Task):
    """Emits one event per word of ``text``; returns ``count``."""

    text: str

    async def execute(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        words = self.text.split()
        for word in words:
            await ctx.emit({"type": "word", "word": word})
        return {"count": len(words)}


class FileCollector(Sink):
    """Appends every event, and the close call, to a JSON-lines file."""

    path: str

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    async def send(self, event: Event) -> None:
        self._write(event.model_dump(mode="json"))

    async def close(self, run: RunLog, status: str) -> None:
        self._write({"closed": status})


# A plugin module the way a user writes one: register_task_types and register_sinks.
@hookimpl
def register_task_types(register: Register) -> None:
    register("words", Words)


@hookimpl
def register_sinks(register: Register) -> None:
    register("file-collector", FileCollector)


words_plugin = make_plugin("words_plugin", register_task_types=register_task_types,
                           register_sinks=register_sinks)


# -- registration ------------------------------------------------------------------------------


def test_builtins_are_registered_through_the_hooks_and_credited_to_runstream() -> None:
    plugins = load_plugins(entry_points=False)

    builtin = plugins.infos[0]
    assert (builtin.name, builtin.distribution, builtin.status) == (
        "runstream", "runstream", "builtin")
    assert builtin.registered == {"executors": ["local"],
                                  "run_log_stores": ["sqlite", "file-system", "memory"],
                                  "event_logs": ["memory"]}
    assert plugins.executors.get("local") is LocalExecutor
    assert plugins.run_log_stores.names() == ["file-system", "memory", "sqlite"]
    assert {plugins.run_log_stores.owner(n) for n in plugins.run_log_stores} == {"runstream"}
    # They come from hook implementations of the built-in plugin, like any plugin's.
    impls = plugins.manager.hook.register_run_log_stores.get_hookimpls()
    assert [impl.plugin_name for impl in impls] == ["runstream"]


def test_duplicate_name_is_rejected_naming_both_plugins() -> None:
    def register_other(register: Register) -> None:
        register("words", Words)

    other = make_plugin("other_plugin", register_task_types=register_other)

    with pytest.raises(PluginError) as info:
        load_plugins([words_plugin, other], entry_points=False, strict=True)

    assert str(info.value) == (
        "plugin 'other_plugin': register_task_types failed: PluginError: task type 'words' is "
        "registered twice: by 'words_plugin' and by 'other_plugin'; uninstall or block one of "
        "them (RUNSTREAM_BLOCK_PLUGINS)")


def test_duplicate_name_outside_strict_mode_is_reported_and_the_first_kept() -> None:
    class OtherWords(Words):
        pass

    def register_other(register: Register) -> None:
        register("words", OtherWords)

    other = make_plugin("other_plugin", register_task_types=register_other)

    plugins = load_plugins([words_plugin, other], entry_points=False, strict=False)

    assert plugins.task_types.get("words") is Words
    info = {i.name: i for i in plugins.infos}
    assert info["words_plugin"].status == "loaded"
    assert info["words_plugin"].registered == {"task_types": ["words"],
                                               "sinks": ["file-collector"]}
    assert info["other_plugin"].status == "failed"
    assert "registered twice: by 'words_plugin' and by 'other_plugin'" in str(
        info["other_plugin"].error)


def test_a_plugin_cannot_take_a_builtin_name() -> None:
    class MyExecutor(LocalExecutor):
        pass

    def register_executors(register: Register) -> None:
        register("local", MyExecutor)

    hijack = make_plugin("hijack", register_executors=register_executors)

    plugins = load_plugins([hijack], entry_points=False, strict=False)

    assert plugins.executors.get("local") is LocalExecutor
    info = {i.name: i for i in plugins.infos}
    assert info["runstream"].status == "builtin"
    assert info["hijack"].status == "failed"
    assert "executor 'local' is registered twice: by 'runstream' and by 'hijack'" in str(
        info["hijack"].error)


def test_registering_a_class_of_the_wrong_kind_is_rejected() -> None:
    def register_sinks(register: Register) -> None:
        register("not-a-sink", Words)  # a Task, not a Sink

    bad = make_plugin("bad_plugin", register_sinks=register_sinks)

    with pytest.raises(PluginError, match=r"plugin 'bad_plugin' registered sink 'not-a-sink' "
                                          r"as <class '.*Words'>, which is not a subclass of "
                                          r"Sink"):
        load_plugins([bad], entry_points=False, strict=True)

    plugins = load_plugins([bad, words_plugin], entry_points=False, strict=False)
    assert "not-a-sink" not in plugins.sinks
    assert plugins.sinks.names() == ["file-collector"]  # the other plugin is not affected
    assert [i.status for i in plugins.infos if i.name == "bad_plugin"] == ["failed"]


def test_async_registration_hook_is_reported_not_silently_ignored() -> None:
    async def register_task_types(register: Register) -> None:
        register("words", Words)

    plugin = make_plugin("async_plugin", register_task_types=register_task_types)

    with pytest.raises(PluginError, match="register_task_types must be a plain function"):
        load_plugins([plugin], entry_points=False, strict=True)


def test_invalid_hook_implementation_is_rejected_when_given_in_code() -> None:
    def register_task_types(register: Register, extra: int) -> None:
        pass

    plugin = make_plugin("wrong_args", register_task_types=register_task_types)

    with pytest.raises(PluginError, match="cannot register plugin wrong_args"):
        load_plugins([plugin], entry_points=False)


async def test_plugin_module_ships_a_task_type_and_a_sink_used_by_name(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    config = Config(run_log_store=ComponentConfig(type="memory"),
                    sinks=[ComponentConfig(type="file-collector", path=str(events_file))])
    runtime = Runtime(config, plugins=[words_plugin], entry_points=False)
    pipeline = pipeline_from_dict({
        "name": "from-yaml",
        "steps": [{"name": "split", "type": "words", "text": "one two three",
                   "returns": ["count"]}],
    }, runtime)
    try:
        handle = pipeline.stream(config=runtime)
        streamed = [event async for event in handle]
        log = await handle.result()
    finally:
        await runtime.aclose()

    assert log.status == "completed"
    assert log.steps["split"].attempts[0].output_parameters == {"count": 3}
    collected = read_jsonl(events_file)
    assert collected[-1] == {"closed": "completed"}
    assert collected[:-1] == [e.model_dump(mode="json") for e in streamed]
    assert [e["data"] for e in collected[:-1] if e["type"] == "step.event"] == [
        {"type": "word", "word": "one"}, {"type": "word", "word": "two"},
        {"type": "word", "word": "three"}]


def test_unknown_sink_in_config_lists_installed_sinks() -> None:
    config = Config(run_log_store=ComponentConfig(type="memory"),
                    sinks=[ComponentConfig(type="file-colector")])

    with pytest.raises(UnknownNameError) as info:
        Runtime(config, plugins=[words_plugin], entry_points=False)

    assert str(info.value) == ("config: sinks[0]: unknown sink 'file-colector'; "
                               "installed sinks: file-collector")


def test_sink_options_are_validated_against_the_sink_model(tmp_path: Path) -> None:
    config = Config(run_log_store=ComponentConfig(type="memory"),
                    sinks=[ComponentConfig(type="file-collector", path="x", colour="red")])

    with pytest.raises(ConfigError) as info:
        Runtime(config, plugins=[words_plugin], entry_points=False)

    assert "unknown key 'colour'; allowed keys: path, queue_size, send_timeout" in str(info.value)


# -- sinks that misbehave ----------------------------------------------------------------------


class FailingSink(Sink):
    """Raises on the second event it is sent."""

    async def send(self, event: Event) -> None:
        if event.seq == 2:
            raise ConnectionError("collector went away")


class StuckSink(Sink):
    """Never returns from send()."""

    async def send(self, event: Event) -> None:
        await asyncio.Event().wait()


def _register_misbehaving(register: Register) -> None:
    register("failing", FailingSink)
    register("stuck", StuckSink)


misbehaving = make_plugin("misbehaving_sinks", register_sinks=_register_misbehaving)


def _runtime_with_sinks(*sinks: ComponentConfig) -> Runtime:
    return make_runtime(words_plugin, misbehaving, config=memory_config(*sinks))


async def test_a_raising_sink_is_dropped_and_reported_once(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    runtime = _runtime_with_sinks(
        ComponentConfig(type="failing"),
        ComponentConfig(type="file-collector", path=str(events_file)))
    pipeline = AsyncPipeline("p", [Words(name="a", text="one two three four")])
    try:
        handle = pipeline.stream(config=runtime)
        streamed = [event async for event in handle]
        log = await handle.result()
    finally:
        await runtime.aclose()

    assert log.status == "completed"
    assert log.warnings == [
        "sink 'failing' (sinks[0]) failed and was dropped for this run: "
        "ConnectionError: details in the server log"]
    # The healthy sink got every event, in order, and its close.
    collected = read_jsonl(events_file)
    assert collected[:-1] == [e.model_dump(mode="json") for e in streamed]
    assert [e["seq"] for e in collected[:-1]] == list(range(1, len(streamed) + 1))
    assert collected[-1] == {"closed": "completed"}
    assert streamed[-1].type == "run.completed"


async def test_a_stuck_sink_is_dropped_after_send_timeout(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    runtime = _runtime_with_sinks(
        ComponentConfig(type="stuck", queue_size=1, send_timeout=0.05),
        ComponentConfig(type="file-collector", path=str(events_file)))
    pipeline = AsyncPipeline("p", [Words(name="a", text="one two three four five six")])
    try:
        async with asyncio.timeout(30):  # a hang would be the bug; this only ends the test
            log = await pipeline.execute(config=runtime)
        stored = await runtime.store.get(log.run_id)
    finally:
        await runtime.aclose()

    assert log.status == "completed"
    assert len(log.warnings) == 1
    assert log.warnings[0].startswith("sink 'stuck' (sinks[0]) failed and was dropped for this "
                                      "run: its queue of 1 events stayed full for 0.05 s")
    collected = read_jsonl(events_file)
    assert [e["type"] for e in collected[:-1]] == [
        "run.started", "step.started", *["step.event"] * 6, "step.completed", "run.completed"]
    assert collected[-1] == {"closed": "completed"}
    assert stored.warnings == log.warnings  # kept in the run log store too


async def test_custom_executor_and_store_from_a_plugin_are_used_by_config() -> None:
    ran: list[str] = []

    class RecordingExecutor(LocalExecutor):
        label: str = "rec"

        async def run_task(self, task: Task, ctx: TaskContext) -> Mapping[str, Any] | None:
            ran.append(f"{self.label}:{task.name}")
            return await task.execute(ctx)

    memory_store = load_plugins(entry_points=False).run_log_stores.get("memory")

    class TaggedStore(memory_store):  # type: ignore[valid-type,misc]
        tag: str

    @hookimpl
    def register_executors(register: Register) -> None:
        register("recording", RecordingExecutor)

    @hookimpl
    def register_run_log_stores(register: Register) -> None:
        register("tagged", TaggedStore)

    plugin = make_plugin("infra_plugin", register_executors=register_executors,
                         register_run_log_stores=register_run_log_stores)
    config = Config.from_yaml("executor: {type: recording, label: x}\n"
                              "run_log_store: {type: tagged, tag: t1}\n")
    runtime = Runtime(config, plugins=[plugin], entry_points=False)
    try:
        log = await AsyncPipeline("p", [Words(name="a", text="hi")]).execute(config=runtime)
        stored = await runtime.store.get(log.run_id)
    finally:
        await runtime.aclose()

    assert ran == ["x:a"]
    assert isinstance(runtime.store, TaggedStore)
    assert runtime.store.tag == "t1"
    assert stored.status == "completed"


def test_a_plugin_whose_registration_fails_is_taken_out_entirely() -> None:
    from types import SimpleNamespace

    import runstream
    from runstream import Task, load_plugins

    class Half(Task):
        async def execute(self, ctx: Any) -> None:
            return None

    calls: list[str] = []

    def register_task_types(register: Any) -> None:
        register("half", Half)

    def register_sinks(register: Any) -> None:
        raise RuntimeError("broken sink import")

    def before_run(run_log: Any) -> None:
        calls.append("before_run")

    half = SimpleNamespace(
        __name__="half",
        register_task_types=runstream.hookimpl(register_task_types),
        register_sinks=runstream.hookimpl(register_sinks),
        before_run=runstream.hookimpl(before_run),
    )
    plugins = load_plugins([half], entry_points=False)
    info = next(i for i in plugins.infos if i.name == "half")
    assert info.status == "failed" and "broken sink import" in (info.error or "")
    assert info.registered == {}
    assert "half" not in plugins.task_types  # nothing half-registered stays behind
    assert not plugins.manager.has_plugin("half")
    assert not plugins.has_impls("before_run")
