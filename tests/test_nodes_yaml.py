"""Composite steps and retries in YAML pipelines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from runstream import (
    Branch,
    Conditional,
    Map,
    Parallel,
    PipelineDefinitionError,
    Retry,
    Runtime,
    load_pipeline,
    pipeline_from_dict,
)

from tests._nodes_util import of_type, run_events, terminal

HERE = "tests.test_nodes_yaml"
CALLS: dict[str, int] = {}


async def stream(topic: str, who: str = "x") -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "start"}
    await asyncio.sleep(0.05)
    yield {"type": "done", "text": f"{topic}:{who}"}


async def upper(item: str, topic: str) -> str:
    return f"{topic}/{item.upper()}"


async def short() -> str:
    return "short answer"


async def long() -> str:
    return "long answer"


async def boom() -> None:
    raise RuntimeError("boom")


async def note(topic: str) -> None:
    CALLS["note"] = CALLS.get("note", 0) + 1


async def flaky_once(key: str) -> str:
    CALLS[key] = CALLS.get(key, 0) + 1
    if CALLS[key] == 1:
        raise RuntimeError("first call fails")
    return f"call {CALLS[key]}"


def join(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"joined": "+".join(results[k]["text"] for k in sorted(results))}


PIPELINE = f"""
name: composite
steps:
  - name: fan
    type: parallel
    fail_fast: true
    branches:
      a:
        - {{name: llm, type: async-python, function: "{HERE}:stream", returns: [text]}}
      b:
        steps:
          - {{name: llm, type: async-python, function: "{HERE}:stream", returns: [text]}}
        on_failure: {{name: note, type: async-python, function: "{HERE}:note"}}
  - name: each
    type: map
    over: words
    iterate_as: item
    max_concurrency: 2
    returns: [up]
    branch:
      - {{name: up, type: async-python, function: "{HERE}:upper", returns: [up]}}
  - name: route
    type: conditional
    parameter: size
    branches:
      small: [{{name: answer, type: async-python, function: "{HERE}:short", returns: [answer]}}]
    default:
      - {{name: answer, type: async-python, function: "{HERE}:long", returns: [answer]}}
  - name: flaky
    type: async-python
    function: "{HERE}:flaky_once"
    returns: [flaky]
    retry: {{max_attempts: 3, retry_on: [RuntimeError], delay: 0}}
"""


def test_yaml_builds_nodes_recursively(runtime: Runtime) -> None:
    p = pipeline_from_dict(__import__("yaml").safe_load(PIPELINE), runtime)
    fan, each, route, flaky = p.steps
    assert isinstance(fan, Parallel) and list(fan.branches) == ["a", "b"]
    assert fan.branches["b"].on_failure is not None
    assert isinstance(each, Map) and each.max_concurrency == 2 and each.returns == ["up"]
    assert isinstance(route, Conditional) and isinstance(route.default, Branch)
    assert flaky.retry == Retry(max_attempts=3, retry_on=["RuntimeError"], delay=0)


async def test_yaml_composite_pipeline_runs(tmp_path: Path, runtime: Runtime) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(PIPELINE)
    CALLS.clear()
    events, log = await run_events(load_pipeline(f, runtime), runtime, {
        "topic": "T", "words": ["a", "b", "c"], "size": "big", "key": "yaml-flaky"})
    assert terminal(events) == ["run.completed"], log.error
    starts = [e.step for e in events if e.type == "step.event" and e.data["type"] == "start"]
    assert sorted(starts) == ["fan.a.llm", "fan.b.llm"]
    assert log.steps["fan"].attempts[0].output_parameters == {"a__text": "T:x",
                                                              "b__text": "T:x"}
    assert log.steps["each"].attempts[0].output_parameters == {"up": ["T/A", "T/B", "T/C"]}
    assert "route.default.answer" in log.steps
    assert log.steps["route"].attempts[0].output_parameters == {"answer": "long answer"}
    assert [e.step for e in of_type(events, "step.retrying")] == ["flaky"]
    assert log.steps["flaky"].attempts[-1].output_parameters == {"flaky": "call 2"}


async def test_yaml_branch_on_failure_and_fail_fast_false(runtime: Runtime) -> None:
    doc = {"name": "f", "steps": [{"name": "fan", "type": "parallel", "fail_fast": False,
                                   "branches": {
        "a": {"steps": [{"name": "boom", "type": "async-python", "function": f"{HERE}:boom"}],
              "on_failure": {"name": "note", "type": "async-python",
                             "function": f"{HERE}:note"}},
        "b": [{"name": "llm", "type": "async-python", "function": f"{HERE}:stream",
               "returns": ["text"]}]}}]}
    CALLS.clear()
    events, log = await run_events(pipeline_from_dict(doc, runtime), runtime, {"topic": "T"})
    assert terminal(events) == ["run.failed"]
    assert CALLS["note"] == 1
    assert log.steps["fan.a.note"].status == "completed"
    assert log.steps["fan.b.llm"].status == "completed"
    assert log.error is not None and log.error.step == "fan.a.boom"


async def test_yaml_merge_reducer_and_nesting(runtime: Runtime) -> None:
    doc = {"name": "n", "steps": [{"name": "m", "type": "map", "over": "topics",
                                   "iterate_as": "topic", "returns": ["joined"], "branch": [
        {"name": "fan", "type": "parallel", "merge": f"{HERE}:join", "branches": {
            k: [{"name": "s", "type": "async-python", "function": f"{HERE}:stream",
                 "returns": ["text"]}] for k in ("a", "b")}}]}]}
    _, log = await run_events(pipeline_from_dict(doc, runtime), runtime,
                              {"topics": ["x", "y"]})
    assert log.status == "completed", log.error
    assert log.steps["m"].attempts[0].output_parameters == {"joined": ["x:x+x:x", "y:x+y:x"]}
    assert "m.1.fan.b.s" in log.steps


STEP = {"name": "s", "type": "async-python", "function": f"{HERE}:short"}


@pytest.mark.parametrize(("step", "message"), [
    ({"name": "f", "type": "parallel"}, "steps[0] (type: parallel): missing required key "
                                        "'branches'"),
    ({"name": "f", "type": "parallel", "branches": {"a": [STEP]}, "colour": 1},
     "steps[0] (type: parallel): unknown key 'colour'; allowed keys: name, type, branches, "
     "fail_fast, merge"),
    ({"type": "parallel", "branches": {"a": [STEP]}}, "missing required key 'name'"),
    ({"name": "f", "type": "parallel", "branches": {"a": STEP}},
     "branches.a: unknown key 'function'; a branch is a list of steps or a mapping with keys "
     "on_failure, steps"),
    ({"name": "f", "type": "parallel", "branches": {"a": []}},
     "branches.a: a branch must be a non-empty list of steps"),
    ({"name": "f", "type": "parallel", "branches": {"a": [{"name": "s", "type": "gpt"}]}},
     "branches.a[0]: unknown task type 'gpt'"),
    ({"name": "f", "type": "parallel", "branches": {"a-b": [STEP]}},
     "steps[0] (type: parallel): parallel step 'f': branch key 'a-b' must be a Python "
     "identifier"),
    ({"name": "f", "type": "parallel", "branches": {"a": [STEP]}, "merge": "nowhere:fn"},
     "'merge' must be prefix, flat or a 'module:function' path"),
    ({"name": "m", "type": "map", "branch": [STEP]}, "missing required key 'over'"),
    ({"name": "m", "type": "map", "over": "xs", "branch": [STEP], "max_concurrency": 0},
     "max_concurrency must be a whole number >= 1"),
    ({"name": "c", "type": "conditional", "branches": {"a": [STEP]}},
     "missing required key 'parameter'"),
    ({"name": "c", "type": "conditional", "parameter": "p", "branches": {"a": [STEP]},
      "default": {"steps": [{"name": "x"}]}}, "default[0]: missing required key 'type'"),
    ({"name": "t", "type": "async-python", "function": f"{HERE}:short",
      "retry": {"max_attempts": 0}}, "retry"),
])
def test_yaml_errors_name_the_place(runtime: Runtime, step: dict[str, Any],
                                    message: str) -> None:
    with pytest.raises(PipelineDefinitionError) as info:
        pipeline_from_dict({"name": "x", "steps": [step]}, runtime, "p.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("p.yaml: steps[0]")
