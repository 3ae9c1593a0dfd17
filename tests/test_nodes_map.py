"""Map: one branch per item, bounded concurrency, results in input order, scopes,
failure and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from runstream import AsyncPipeline, Map, PipelineDefinitionError, Runtime
from runstream_async_python import AsyncPythonTask, PythonTask

from tests._nodes_util import of_type, run_events, runstream_tasks, task_dicts, terminal


async def test_results_are_collected_in_input_order(runtime: Runtime) -> None:
    # Later items finish first (each waits until the stream has shown the next item's step
    # completed): the lists still follow the input order.
    items = ["a", "b", "c", "d"]
    completed_seen = {f"m.{i}.up": asyncio.Event() for i in range(len(items))}

    async def fn(item: str) -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "start", "item": item}
        i = items.index(item)
        if i + 1 < len(items):
            async with asyncio.timeout(10):
                await completed_seen[f"m.{i + 1}.up"].wait()
        yield {"type": "done", "out": item.upper()}

    p = AsyncPipeline("order", [Map("m", over="items", max_concurrency=4, returns=["out"],
                                    branch=[AsyncPythonTask(name="up", function=fn,
                                                            returns=["out"])])])
    handle = p.stream({"items": items}, config=runtime)
    events = []
    async for event in handle:
        events.append(event)
        if event.type == "step.completed" and event.step in completed_seen:
            completed_seen[event.step].set()
    await handle.result()
    log = await runtime.store.get(handle.run_id)
    assert log.steps["m"].attempts[0].output_parameters == {"out": ["A", "B", "C", "D"]}
    completed = [e.step for e in of_type(events, "step.completed") if e.step != "m"]
    assert completed == ["m.3.up", "m.2.up", "m.1.up", "m.0.up"]
    for i, item in enumerate(items):
        assert task_dicts(events, f"m.{i}.up")[0] == {"type": "start", "item": item}


async def test_max_concurrency_bounds_the_branches_in_flight(runtime: Runtime) -> None:
    active = 0
    peak = 0

    async def tracked(item: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return item * 10

    p = AsyncPipeline("bound", [Map("m", over="xs", max_concurrency=3, returns=["y"],
                                    branch=[AsyncPythonTask(name="t", function=tracked,
                                                            returns=["y"])])])
    _, log = await run_events(p, runtime, {"xs": list(range(12))})
    assert peak == 3
    assert log.steps["m"].attempts[0].output_parameters == {"y": [i * 10 for i in range(12)]}


async def test_branches_see_earlier_params_the_item_and_their_own_returns(
        runtime: Runtime) -> None:
    async def prefix() -> str:
        return "Q"

    async def ask(prefix: str, question: str) -> str:
        return f"{prefix}:{question}"

    async def answer(asked: str, question: str, item: Any = None) -> str:
        return f"{asked}->{len(question)}|{item}"

    p = AsyncPipeline("scopes", [
        AsyncPythonTask(name="prefix", function=prefix, returns=["prefix"]),
        Map("each", over="questions", iterate_as="question", returns=["answer"], branch=[
            AsyncPythonTask(name="ask", function=ask, returns=["asked"]),
            AsyncPythonTask(name="answer", function=answer, returns=["answer"]),
        ]),
        PythonTask(name="count", function=lambda answer, asked=None: (len(answer), asked),
                   returns=["n", "asked_outside"]),
    ])
    _, log = await run_events(p, runtime, {"questions": ["why", "how now"]})
    assert log.status == "completed"
    assert log.steps["each"].attempts[0].output_parameters == {
        "answer": ["Q:why->3|None", "Q:how now->7|None"]}
    # Only `returns` leave a branch: 'asked' and the item stay inside.
    assert log.steps["count"].attempts[0].output_parameters == {"n": 2, "asked_outside": None}


async def test_a_branch_that_misses_a_return_fails_the_step(runtime: Runtime) -> None:
    p = AsyncPipeline("miss", [Map("m", over="xs", returns=["nope"], branch=[
        PythonTask(name="t", function=lambda item: item, returns=["y"])])])
    events, log = await run_events(p, runtime, {"xs": [1]})
    assert terminal(events) == ["run.failed"]
    assert log.error is not None and log.error.step == "m"
    assert "returns 'nope', but branch 0 did not set it (it set: y)" in log.error.message


@pytest.mark.parametrize(("params", "message"), [
    ({}, "iterates over parameter 'xs', which is not set"),
    ({"xs": "abc"}, "parameter 'xs' must be a list, got str"),
    ({"xs": {"a": 1}}, "parameter 'xs' must be a list, got dict"),
])
async def test_over_must_be_a_list(runtime: Runtime, params: dict[str, Any],
                                   message: str) -> None:
    p = AsyncPipeline("bad", [Map("m", over="xs", branch=[
        PythonTask(name="t", function=lambda item: None)])])
    events, log = await run_events(p, runtime, params)
    assert terminal(events) == ["run.failed"]
    assert log.error is not None and message in log.error.message


async def test_empty_list_gives_empty_results(runtime: Runtime) -> None:
    p = AsyncPipeline("empty", [Map("m", over="xs", returns=["y"], branch=[
        PythonTask(name="t", function=lambda item: item, returns=["y"])])])
    _, log = await run_events(p, runtime, {"xs": []})
    assert log.status == "completed"
    assert log.steps["m"].attempts[0].output_parameters == {"y": []}


class Items:
    def __init__(self) -> None:
        self.started: list[int] = []
        self.finally_ran: list[int] = []
        self.all_started = asyncio.Event()

    async def run(self, item: int) -> AsyncGenerator[dict[str, Any], None]:
        self.started.append(item)
        try:
            if item == 3:
                yield {"type": "failing"}
                raise RuntimeError(f"item {item} broke")
            for i in range(20):
                yield {"type": "tick", "i": i}
                await asyncio.sleep(0.01)
            yield {"type": "done", "y": item}
        finally:
            self.finally_ran.append(item)


def mapped(items: Items, fail_fast: bool) -> AsyncPipeline:
    return AsyncPipeline("mff", [Map("m", over="xs", max_concurrency=4, fail_fast=fail_fast,
                                     returns=["y"], branch=[
        AsyncPythonTask(name="t", function=items.run, returns=["y"])])])


async def test_fail_fast_stops_the_map_and_ends_once(runtime: Runtime) -> None:
    items = Items()
    events, log = await run_events(mapped(items, True), runtime, {"xs": list(range(12))})
    assert terminal(events) == ["run.failed"]
    assert log.error is not None and log.error.step == "m.3.t"
    # Items 0-3 started together; 3 failed at once; nothing new started, the rest cancelled.
    assert sorted(items.started) == [0, 1, 2, 3]
    assert sorted(items.finally_ran) == [0, 1, 2, 3]
    assert [log.steps[f"m.{i}.t"].status for i in range(4)] == ["cancelled"] * 3 + ["failed"]


async def test_without_fail_fast_every_item_runs_then_the_run_fails_once(
        runtime: Runtime) -> None:
    items = Items()
    events, log = await run_events(mapped(items, False), runtime, {"xs": list(range(8))})
    assert terminal(events) == ["run.failed"]
    assert sorted(items.started) == list(range(8))
    assert [log.steps[f"m.{i}.t"].status for i in range(8)] == (
        ["completed"] * 3 + ["failed"] + ["completed"] * 4)
    assert log.error is not None and log.error.step == "m.3.t"


async def test_cancelling_a_run_mid_map_cancels_every_branch(runtime: Runtime) -> None:
    finally_ran: list[int] = []
    started: list[int] = []
    five_running = asyncio.Event()
    before = asyncio.all_tasks()

    async def forever(item: int) -> AsyncGenerator[dict[str, Any], None]:
        started.append(item)
        if len(started) == 5:
            five_running.set()
        try:
            while True:
                yield {"type": "tick", "item": item}
                await asyncio.sleep(0.005)
        finally:
            finally_ran.append(item)

    p = AsyncPipeline("cancel", [Map("m", over="xs", max_concurrency=5, branch=[
        AsyncPythonTask(name="t", function=forever)])])
    handle = p.stream({"xs": list(range(50))}, config=runtime)
    events = []
    async for event in handle:
        events.append(event)
        if five_running.is_set() and len(events) > 30:
            await handle.cancel()
    log = await handle.result()

    assert log.status == "cancelled"
    assert terminal(events) == ["run.cancelled"]
    assert sorted(started) == [0, 1, 2, 3, 4]
    assert sorted(finally_ran) == sorted(started)  # every branch's finally ran
    assert {log.steps[f"m.{i}.t"].status for i in range(5)} == {"cancelled"}
    assert log.steps["m"].status == "cancelled"
    assert runstream_tasks() == set()
    assert asyncio.all_tasks() == before  # nothing left running


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"over": "a b"}, "over must be a parameter name"),
    ({"iterate_as": "1x"}, "iterate_as must be a parameter name"),
    ({"max_concurrency": 0}, "max_concurrency must be a whole number >= 1"),
    ({"returns": "y"}, "returns must be a list of parameter names"),
    ({"returns": ["y", "y"]}, "return names must be unique"),
    ({"branch": []}, "branch: a branch needs a non-empty list of steps"),
])
def test_definition_errors(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"over": "xs", "branch": [PythonTask(name="t", function=len)]}
    with pytest.raises(PipelineDefinitionError, match=message):
        Map("m", **{**args, **kwargs})
