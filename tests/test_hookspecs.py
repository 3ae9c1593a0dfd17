"""The hook specifications: each documented and exercised, and the lifecycle hooks' firing."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import runstream.hookspecs
from runstream import (
    AsyncPipeline,
    RunLog,
    Runtime,
    StepLog,
    Task,
    TaskContext,
    hookimpl,
)
from runstream.testing import RuntimeFactory

ROOT = Path(__file__).resolve().parent.parent

#: The hooks listed in DESIGN.md's "Plugins" section (registration, node and run lifecycle).
DESIGN_HOOKS = {
    "register_task_types", "register_sinks", "register_executors", "register_run_log_stores",
    "register_event_logs",
    "before_node_run", "after_node_run", "on_node_error",
    "before_run", "after_run",
}


def hookspecs() -> dict[str, Any]:
    return {name: obj for name, obj in vars(runstream.hookspecs).items()
            if callable(obj) and hasattr(obj, "runstream_spec")}


# -- the specs themselves ----------------------------------------------------------------------


def test_spec_names_are_those_of_the_design() -> None:
    assert set(hookspecs()) == DESIGN_HOOKS


@pytest.mark.parametrize("name", sorted(DESIGN_HOOKS))
def test_hookspec_has_a_docstring_saying_when_it_fires(name: str) -> None:
    doc = inspect.getdoc(hookspecs()[name]) or ""
    assert "fires" in doc.lower(), f"{name}'s docstring should say when it fires"


@pytest.mark.parametrize("name", sorted(DESIGN_HOOKS))
def test_hookspec_is_documented_in_docs_hooks_md(name: str) -> None:
    text = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    params = ", ".join(inspect.signature(hookspecs()[name]).parameters)
    assert f"### `{name}({params})`" in text, (
        f"docs/hooks.md needs a '### `{name}({params})`' section")


@pytest.mark.parametrize("name", sorted(DESIGN_HOOKS))
def test_hookspec_is_implemented_by_some_test(name: str) -> None:
    # Like datasette's test: some test module defines a function of that name under @hookimpl.
    pattern = re.compile(
        r"^\s*@(?:runstream\.)?hookimpl(?:\(.*\))?\s*\n\s*(?:async\s+)?def\s+(\w+)\(",
        re.MULTILINE)
    implemented = {m.group(1) for path in (ROOT / "tests").rglob("test_*.py")
                   for m in pattern.finditer(path.read_text(encoding="utf-8"))}
    assert name in implemented


# -- lifecycle hooks fire, in order ------------------------------------------------------------


class Emit(Task):
    """Emits one event and returns ``value`` under each name in ``returns``."""

    value: Any = None
    ran: ClassVar[list[str]] = []

    async def execute(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        self.ran.append(self.name)
        await ctx.emit({"type": "hello", "step": self.name})
        return {name: self.value for name in self.returns}


class Boom(Task):
    async def execute(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        raise ValueError("boom")


class Hang(Task):
    async def execute(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        await ctx.emit({"type": "waiting"})
        await asyncio.Event().wait()
        return None


class Recorder:
    """Implements every lifecycle hook; the async ones finish only if awaited."""

    def __init__(self, fail_in: str | None = None, fail_step: str | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_in = fail_in
        self.fail_step = fail_step

    def _maybe_fail(self, hook: str, step: str | None = None) -> None:
        if hook == self.fail_in and (self.fail_step is None or step == self.fail_step):
            raise RuntimeError(f"{hook} hook broke")

    @hookimpl
    def before_run(self, run_log: RunLog) -> None:
        self.calls.append(("before_run", run_log.status, list(run_log.steps)))
        self._maybe_fail("before_run")

    @hookimpl
    async def before_node_run(self, run_log: RunLog, step: str,
                              parameters: Mapping[str, Any]) -> None:
        await asyncio.sleep(0)
        self.calls.append(("before_node_run", step, dict(parameters),
                           run_log.steps[step].status))
        self._maybe_fail("before_node_run", step)

    @hookimpl
    def after_node_run(self, run_log: RunLog, step: str, step_log: StepLog) -> None:
        self.calls.append(("after_node_run", step, step_log.status,
                           step_log.attempts[-1].output_parameters))
        self._maybe_fail("after_node_run", step)

    @hookimpl
    async def on_node_error(self, run_log: RunLog, step: str, error: BaseException) -> None:
        await asyncio.sleep(0)
        self.calls.append(("on_node_error", step, f"{type(error).__name__}: {error}"))
        self._maybe_fail("on_node_error", step)

    @hookimpl
    async def after_run(self, run_log: RunLog) -> None:
        await asyncio.sleep(0)
        self.calls.append(("after_run", run_log.status, run_log.ended is not None))
        self._maybe_fail("after_run")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(autouse=True)
def _clear_ran() -> None:
    Emit.ran.clear()


async def test_hooks_fire_in_order_on_success(recorder: Recorder,
        runstream_runtime: RuntimeFactory) -> None:
    pipeline = AsyncPipeline("p", [Emit(name="a", value=1, returns=["x"]), Emit(name="b")])

    log = await pipeline.execute({"topic": "t"}, config=runstream_runtime(recorder))

    assert log.status == "completed"
    assert recorder.calls == [
        ("before_run", "running", []),
        ("before_node_run", "a", {"topic": "t"}, "running"),
        ("after_node_run", "a", "completed", {"x": 1}),
        ("before_node_run", "b", {"topic": "t", "x": 1}, "running"),
        ("after_node_run", "b", "completed", {}),
        ("after_run", "completed", True),
    ]


async def test_hooks_fire_in_order_on_failure(recorder: Recorder,
        runstream_runtime: RuntimeFactory) -> None:
    pipeline = AsyncPipeline("p", [Emit(name="a"), Boom(name="b"), Emit(name="c")])

    log = await _run_to_end(pipeline, runstream_runtime(recorder))

    assert log.status == "failed"
    assert recorder.calls == [
        ("before_run", "running", []),
        ("before_node_run", "a", {}, "running"),
        ("after_node_run", "a", "completed", {}),
        ("before_node_run", "b", {}, "running"),
        ("on_node_error", "b", "ValueError: boom"),
        ("after_run", "failed", True),
    ]
    assert Emit.ran == ["a"]


async def _run_to_end(pipeline: AsyncPipeline, runtime: Runtime) -> RunLog:
    handle = pipeline.stream(config=runtime)
    events = [event async for event in handle]
    assert events[-1].type in {"run.completed", "run.failed", "run.cancelled"}
    return await handle.result()


async def test_a_raising_before_node_run_fails_the_step(runstream_runtime: RuntimeFactory) -> None:
    recorder = Recorder(fail_in="before_node_run", fail_step="b")
    pipeline = AsyncPipeline("p", [Emit(name="a"), Emit(name="b"), Emit(name="c")])

    log = await _run_to_end(pipeline, runstream_runtime(recorder))

    assert log.status == "failed"
    assert log.error is not None
    assert (log.error.step, log.error.type, log.error.message) == (
        "b", "RuntimeError", "before_node_run hook broke")
    assert Emit.ran == ["a"]  # b's task never ran, nor did anything after it
    assert log.steps["b"].status == "failed"
    assert "c" not in log.steps
    assert ("on_node_error", "b", "RuntimeError: before_node_run hook broke") in recorder.calls


async def test_a_raising_after_node_run_fails_the_step(runstream_runtime: RuntimeFactory) -> None:
    recorder = Recorder(fail_in="after_node_run", fail_step="a")
    pipeline = AsyncPipeline("p", [Emit(name="a"), Emit(name="b")])

    log = await _run_to_end(pipeline, runstream_runtime(recorder))

    assert log.status == "failed"
    assert log.error is not None
    assert log.error.step == "a"
    assert Emit.ran == ["a"]


async def test_a_raising_before_run_fails_the_run(runstream_runtime: RuntimeFactory) -> None:
    recorder = Recorder(fail_in="before_run")
    pipeline = AsyncPipeline("p", [Emit(name="a")])

    handle = pipeline.stream(config=runstream_runtime(recorder))
    events = [event async for event in handle]
    log = await handle.result()

    assert log.status == "failed"
    assert log.error is not None
    assert (log.error.step, log.error.message) == (None, "before_run hook broke")
    assert Emit.ran == []
    assert [e.type for e in events] == ["run.started", "run.failed"]
    assert recorder.calls[-1] == ("after_run", "failed", True)


async def test_a_raising_after_run_is_a_warning(runstream_runtime: RuntimeFactory) -> None:
    recorder = Recorder(fail_in="after_run")
    runtime = runstream_runtime(recorder)

    log = await AsyncPipeline("p", [Emit(name="a")]).execute(config=runtime)

    assert log.status == "completed"
    assert log.warnings == ["hook after_run raised RuntimeError: details in the server log"]
    assert (await runtime.store.get(log.run_id)).warnings == log.warnings


async def test_a_raising_on_node_error_is_a_warning(runstream_runtime: RuntimeFactory) -> None:
    recorder = Recorder(fail_in="on_node_error")

    log = await _run_to_end(AsyncPipeline("p", [Boom(name="b")]), runstream_runtime(recorder))

    assert log.status == "failed"
    assert log.error is not None
    assert (log.error.step, log.error.message) == ("b", "boom")  # the step's error, not the hook's
    assert log.warnings == [
        "hook on_node_error raised RuntimeError: details in the server log"]


async def test_after_run_sees_a_cancelled_run(recorder: Recorder,
        runstream_runtime: RuntimeFactory) -> None:
    handle = AsyncPipeline("p", [Hang(name="h")]).stream(config=runstream_runtime(recorder))
    async for event in handle:
        if event.type == "step.event":
            break  # leaving the iteration cancels the run

    log = await handle.result()

    assert log.status == "cancelled"
    assert recorder.calls[-1] == ("after_run", "cancelled", True)
    assert [c[0] for c in recorder.calls] == ["before_run", "before_node_run", "after_run"]


async def test_every_plugins_hooks_fire(runstream_runtime: RuntimeFactory) -> None:
    first, second = Recorder(), Recorder()

    await AsyncPipeline("p", [Emit(name="a")]).execute(config=runstream_runtime(first, second))

    assert first.calls == second.calls
    assert [c[0] for c in first.calls] == [
        "before_run", "before_node_run", "after_node_run", "after_run"]
