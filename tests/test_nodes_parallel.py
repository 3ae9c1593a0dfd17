"""Parallel: concurrent branches, interleaved events with branch paths, scopes, merge rules,
fail_fast, on_failure inside a branch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    Branch,
    Map,
    Parallel,
    PipelineDefinitionError,
    Runtime,
    current_task_context,
)
from runstream_async_python import AsyncPythonTask, PythonTask

from tests._nodes_util import of_type, run_events, task_dicts, terminal


def worker(i: int, all_started: asyncio.Barrier) -> AsyncPythonTask:
    """Branch ``b{i}``: a start event, then (once every branch has started) an end event."""
    async def fn() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "start", "branch": f"b{i}"}
        # Branches that ran one after another would never get past this (the test times out).
        async with asyncio.timeout(10):
            await all_started.wait()
        yield {"type": "end", "branch": f"b{i}"}
    return AsyncPythonTask(name="work", function=fn)


async def test_ten_branches_run_concurrently_and_interleave_with_branch_paths(
        runtime: Runtime) -> None:
    all_started = asyncio.Barrier(10)
    fan = Parallel("fan", branches={f"b{i}": [worker(i, all_started)] for i in range(10)})
    events, log = await run_events(AsyncPipeline("p", [fan]), runtime)

    dicts = of_type(events, "step.event")
    assert len(dicts) == 20
    starts = [i for i, e in enumerate(events) if e.type == "step.event"
              and e.data["type"] == "start"]
    ends = [i for i, e in enumerate(events) if e.type == "step.event" and e.data["type"] == "end"]
    # Overlap: every branch started before any branch finished.
    assert max(starts) < min(ends)
    # Each event carries its branch's path, so a client can separate the streams.
    for i in range(10):
        assert [d["branch"] for d in task_dicts(events, f"fan.b{i}.work")] == [f"b{i}"] * 2
    assert terminal(events) == ["run.completed"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert set(log.steps) == {"fan", *(f"fan.b{i}.work" for i in range(10))}
    assert log.steps["fan"].status == "completed"


async def test_the_node_has_its_own_lifecycle_events(runtime: Runtime) -> None:
    fan = Parallel("fan", branches={"a": [worker(0, asyncio.Barrier(1))]})
    events, _ = await run_events(AsyncPipeline("p", [fan]), runtime)
    node = [(e.type, e.data.get("node")) for e in events if e.step == "fan"]
    assert node == [("step.started", "parallel"), ("step.completed", None)]
    assert events[1].step == "fan"  # started before its branches
    assert events[-2].step == "fan"  # completed after them


async def topic() -> str:
    return "rivers"


def after(a__x: str, a__y: str, b__z: str, b__b_saw_x: Any, x: str = "unset") -> str:
    return f"{a__x}|{a__y}|{b__z}|{b__b_saw_x}|{x}"


async def test_branches_see_earlier_params_and_their_own_never_a_siblings(
        runtime: Runtime) -> None:
    a_has_set_x = asyncio.Event()

    async def a_first(topic: str) -> str:
        return f"{topic}-a1"

    async def a_second(topic: str, x: str) -> str:
        a_has_set_x.set()
        return f"{x}+a2"

    async def b_waits() -> None:
        await a_has_set_x.wait()

    async def b_reads(topic: str, x: str | None = None) -> dict[str, Any]:
        return {"z": f"{topic}-b", "b_saw_x": x}  # branch a has set x by now: b must not see it

    p = AsyncPipeline("scopes", [
        AsyncPythonTask(name="topic", function=topic, returns=["topic"]),
        Parallel("fan", branches={
            "a": [AsyncPythonTask(name="one", function=a_first, returns=["x"]),
                  AsyncPythonTask(name="two", function=a_second, returns=["y"])],
            "b": [AsyncPythonTask(name="wait", function=b_waits),
                  AsyncPythonTask(name="one", function=b_reads, returns=["z", "b_saw_x"])],
        }),
        PythonTask(name="after", function=after, returns=["summary"]),
    ])
    _, log = await run_events(p, runtime)
    assert log.status == "completed"
    assert log.steps["fan.a.two"].attempts[0].input_parameters["x"] == "rivers-a1"
    assert "x" not in log.steps["fan.b.one"].attempts[0].input_parameters
    assert log.steps["fan"].attempts[0].output_parameters == {
        "a__x": "rivers-a1", "a__y": "rivers-a1+a2", "b__z": "rivers-b", "b__b_saw_x": None}
    # Only the merged names reach the parent scope: 'x' itself stays in branch a.
    assert log.steps["after"].attempts[0].output_parameters == {
        "summary": "rivers-a1|rivers-a1+a2|rivers-b|None|unset"}


async def text_a() -> str:
    return "from a"


async def text_b() -> str:
    return "from b"


def two_texts(merge: Any) -> AsyncPipeline:
    return AsyncPipeline("merge", [Parallel("fan", merge=merge, branches={
        "a": [AsyncPythonTask(name="t", function=text_a, returns=["text"])],
        "b": [AsyncPythonTask(name="t", function=text_b, returns=["text"])],
    })])


async def test_flat_merge_conflict_fails_naming_parameter_and_branches(
        runtime: Runtime) -> None:
    events, log = await run_events(two_texts("flat"), runtime)
    assert terminal(events) == ["run.failed"]
    assert log.status == "failed"
    assert log.error is not None and log.error.step == "fan"
    assert log.error.type == "ParameterError"
    assert "parameter 'text' is set by branches 'a' and 'b'" in log.error.message
    assert log.steps["fan"].status == "failed"
    assert of_type(events, "step.failed")[-1].step == "fan"


async def test_flat_merge_without_conflict_keeps_names(runtime: Runtime) -> None:
    p = AsyncPipeline("flat", [Parallel("fan", merge="flat", branches={
        "a": [AsyncPythonTask(name="t", function=text_a, returns=["ta"])],
        "b": [AsyncPythonTask(name="t", function=text_b, returns=["tb"])],
    })])
    _, log = await run_events(p, runtime)
    assert log.steps["fan"].attempts[0].output_parameters == {"ta": "from a", "tb": "from b"}


async def test_reducer_merge(runtime: Runtime) -> None:
    def join(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {"texts": [results[k]["text"] for k in sorted(results)]}

    _, log = await run_events(two_texts(join), runtime)
    assert log.steps["fan"].attempts[0].output_parameters == {"texts": ["from a", "from b"]}


async def test_reducer_must_return_valid_names(runtime: Runtime) -> None:
    _, log = await run_events(two_texts(lambda results: {"not valid": 1}), runtime)
    assert log.error is not None
    assert "'not valid', which is not a valid parameter name" in log.error.message


class Slow:
    """Branch b: ten ticks. With ``hold``, it stops after its first tick until cancelled, so
    only a sibling's failure can end it; branch a fails once b has ticked."""

    def __init__(self, hold: bool) -> None:
        self.hold = hold
        self.ticked = asyncio.Event()
        self.finally_ran = False
        self.finished = False

    async def run(self) -> AsyncGenerator[dict[str, Any], None]:
        try:
            for i in range(10):
                yield {"type": "tick", "i": i}
                self.ticked.set()
                if self.hold:
                    await asyncio.Event().wait()  # never set: only cancellation gets past
            self.finished = True
        finally:
            self.finally_ran = True

    async def boom(self) -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "about to fail"}
        await self.ticked.wait()
        raise RuntimeError("branch a broke")


async def boom() -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "about to fail"}
    raise RuntimeError("branch a broke")


def failing(slow: Slow, fail_fast: bool) -> AsyncPipeline:
    return AsyncPipeline("ff", [Parallel("fan", fail_fast=fail_fast, branches={
        "a": [AsyncPythonTask(name="boom", function=slow.boom)],
        "b": [AsyncPythonTask(name="slow", function=slow.run)],
    })])


async def test_fail_fast_cancels_siblings_and_ends_once(runtime: Runtime) -> None:
    slow = Slow(hold=True)
    events, log = await run_events(failing(slow, fail_fast=True), runtime)
    assert terminal(events) == ["run.failed"]
    assert slow.finally_ran and not slow.finished
    assert log.steps["fan.b.slow"].status == "cancelled"
    assert log.steps["fan.a.boom"].status == "failed"
    assert log.steps["fan"].status == "failed"
    # The run reports the step where it broke; the node fails with it.
    assert log.error is not None and log.error.step == "fan.a.boom"
    assert log.error.message == "branch a broke"
    failed = of_type(events, "step.failed")
    assert [e.step for e in failed] == ["fan.a.boom", "fan"]
    assert failed[1].data["step"] == "fan.a.boom"
    assert len(task_dicts(events, "fan.b.slow")) < 10


async def test_without_fail_fast_siblings_finish_then_the_run_fails_once(
        runtime: Runtime) -> None:
    slow = Slow(hold=False)
    events, log = await run_events(failing(slow, fail_fast=False), runtime)
    assert terminal(events) == ["run.failed"]
    assert slow.finished
    assert log.steps["fan.b.slow"].status == "completed"
    assert len(task_dicts(events, "fan.b.slow")) == 10
    assert log.error is not None and log.error.step == "fan.a.boom"
    # The node fails only after its last branch ended.
    node_failed = next(i for i, e in enumerate(events) if e.type == "step.failed"
                       and e.step == "fan")
    slow_done = next(i for i, e in enumerate(events) if e.type == "step.completed"
                     and e.step == "fan.b.slow")
    assert slow_done < node_failed


async def test_all_failures_are_named_without_fail_fast(runtime: Runtime) -> None:
    p = AsyncPipeline("two", [Parallel("fan", fail_fast=False, branches={
        "a": [AsyncPythonTask(name="boom", function=boom)],
        "b": [AsyncPythonTask(name="boom", function=boom)],
    })])
    events, log = await run_events(p, runtime)
    assert terminal(events) == ["run.failed"]
    assert log.error is not None
    assert "failed too" in log.error.message
    assert {log.steps["fan.a.boom"].status, log.steps["fan.b.boom"].status} == {"failed"}


async def test_on_failure_runs_inside_the_branch_scope(runtime: Runtime) -> None:
    seen: dict[str, Any] = {}

    async def a_value() -> str:
        return "partial"

    async def cleanup(value: str) -> None:
        seen["value"] = value
        seen["step"] = current_task_context().step

    p = AsyncPipeline("handler", [Parallel("fan", branches={
        "a": Branch([AsyncPythonTask(name="v", function=a_value, returns=["value"]),
                     AsyncPythonTask(name="boom", function=boom)],
                    on_failure=AsyncPythonTask(name="cleanup", function=cleanup)),
        "b": [AsyncPythonTask(name="t", function=text_b, returns=["text"])],
    })])
    events, log = await run_events(p, runtime)
    assert seen == {"value": "partial", "step": "fan.a.cleanup"}
    assert log.steps["fan.a.cleanup"].status == "completed"
    # Like a pipeline's on_failure, the handler reports; the branch (and run) still fail.
    assert terminal(events) == ["run.failed"]
    assert log.error is not None and log.error.step == "fan.a.boom"


async def test_parallel_nested_in_map_gets_nested_paths(runtime: Runtime) -> None:
    async def shout(item: str) -> str:
        return item.upper()

    async def double(item: str) -> str:
        return item * 2

    p = AsyncPipeline("nested", [Map("m", over="words", returns=["a__r"], branch=[
        Parallel("fan", branches={
            "a": [AsyncPythonTask(name="x", function=shout, returns=["r"])],
            "b": [AsyncPythonTask(name="x", function=double, returns=["r"])],
        })])])
    _, log = await run_events(p, runtime, {"words": ["hi", "yo"]})
    assert log.status == "completed"
    assert {"m.0.fan.a.x", "m.1.fan.b.x", "m.1.fan"} <= set(log.steps)
    assert log.steps["m"].attempts[0].output_parameters == {"a__r": ["HI", "YO"]}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"branches": {}}, "branches must be a non-empty mapping"),
    ({"branches": {"a__b": [PythonTask(name="t", function=len)]}}, "without '__'"),
    ({"branches": {"a-b": [PythonTask(name="t", function=len)]}}, "Python identifier"),
    ({"branches": {"a": []}}, "branch 'a': a branch needs a non-empty list of steps"),
    ({"branches": {"a": [len]}}, "steps[0] is a builtin_function_or_method, not a task"),
    ({"branches": {"a": [PythonTask(name="t", function=len)] * 2}}, "two steps are named 't'"),
    ({"branches": {"a": [PythonTask(name="t", function=len)]}, "merge": "deep"},
     "merge must be 'prefix', 'flat' or a function"),
])
def test_definition_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(PipelineDefinitionError, match=message.replace("[", r"\[").replace(
            "]", r"\]")):
        Parallel("fan", **kwargs)


def test_node_names_cannot_hold_dots() -> None:
    with pytest.raises(PipelineDefinitionError, match="no dots"):
        Parallel("a.b", branches={"a": [PythonTask(name="t", function=len)]})


def test_pipelines_reject_duplicate_node_names() -> None:
    fan = Parallel("x", branches={"a": [PythonTask(name="t", function=len)]})
    with pytest.raises(PipelineDefinitionError, match="two steps are named 'x'"):
        AsyncPipeline("p", [fan, PythonTask(name="x", function=len)])


def test_parallel_streams_through_sse_with_branch_paths(runtime: Runtime) -> None:
    import json

    import httpx
    from fastapi import FastAPI
    from fastapi.responses import Response
    from httpx_sse import connect_sse
    from runstream import Retry
    from runstream_sse import sse_response

    from tests._server import serve

    calls = {"a": 0}

    async def chunks(branch: str, n: int) -> AsyncGenerator[dict[str, Any], None]:
        for i in range(n):
            await asyncio.sleep(0.005)
            yield {"type": "chunk", "branch": branch, "i": i}

    async def a_flaky() -> AsyncGenerator[dict[str, Any], None]:
        calls["a"] += 1
        async for item in chunks("a", 3):
            yield item
        if calls["a"] == 1:
            raise RuntimeError("a: first attempt fails")

    async def b() -> AsyncGenerator[dict[str, Any], None]:
        async for item in chunks("b", 6):
            yield item

    fan = AsyncPipeline("fan-sse", [Parallel("fan", branches={
        "a": [AsyncPythonTask(name="llm", function=a_flaky,
                              retry=Retry(max_attempts=2, delay=0, max_delay=0))],
        "b": [AsyncPythonTask(name="llm", function=b)],
    })])
    app = FastAPI()

    @app.post("/fan")
    async def post_fan() -> Response:
        return sse_response(fan, {}, config=runtime, lifecycle=True)

    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client, \
            connect_sse(client, "POST", "/fan") as source:
        frames = [(e.event, json.loads(e.data)) for e in source.iter_sse()]

    named = [(kind, data.get("step")) for kind, data in frames if kind != "message"]
    assert ("step.started", "fan") in named
    assert ("step.started", "fan.a.llm") in named
    assert ("step.started", "fan.b.llm") in named
    assert ("step.retrying", "fan.a.llm") in named
    assert named.count(("step.completed", "fan.a.llm")) == 1
    assert ("step.completed", "fan") in named
    assert [kind for kind, _ in frames if kind.startswith("run.") and kind != "run.started"] == [
        "run.completed"]
    chunks_seen = [data for kind, data in frames if kind == "message"]
    assert sorted((d["branch"], d["i"]) for d in chunks_seen) == sorted(
        [("a", i) for i in range(3)] * 2 + [("b", i) for i in range(6)])
    # Each data frame of a branch says which step (so which branch) it came from.
    assert all(d["step"] == f"fan.{d['branch']}.llm" for d in chunks_seen)
    # The branches' chunks interleave on the one stream.
    order = [d["branch"] for d in chunks_seen]
    assert order.index("b") < len(order) - 1 - order[::-1].index("a")


async def test_a_run_started_inside_a_branch_sees_only_its_own_parameters(
        runtime: Runtime) -> None:
    async def inner_sees(**params: Any) -> list[str]:
        return sorted(params)

    inner = AsyncPipeline("inner", [AsyncPythonTask(name="look", function=inner_sees,
                                                    returns=["seen"])])

    async def start_inner(secret: str) -> list[str]:
        log = await inner.execute({"own": 1}, config=runtime)
        seen: list[str] = log.steps["look"].attempts[0].output_parameters["seen"]
        return seen

    outer = AsyncPipeline("outer", [Parallel("fan", branches={
        "a": [AsyncPythonTask(name="run", function=start_inner, returns=["inner_saw"])]})])
    _, log = await run_events(outer, runtime, {"secret": "s"})
    assert log.status == "completed", log.error
    assert log.steps["fan"].attempts[0].output_parameters == {"a__inner_saw": ["own"]}
