"""Conditional: the branch for str(value), else default, else a clear failure."""

from __future__ import annotations

from typing import Any

import pytest
from runstream import AsyncPipeline, Conditional, PipelineDefinitionError, Runtime
from runstream_async_python import AsyncPythonTask, PythonTask

from tests._nodes_util import run_events, terminal


def label(text: str) -> PythonTask:
    return PythonTask(name="say", function=lambda: text, returns=["said"])


def routed(default: bool = True) -> AsyncPipeline:
    return AsyncPipeline("route", [
        Conditional("route", parameter="mode",
                    branches={"fast": [label("fast")], "2": [label("two")],
                              True: [label("yes")]},
                    default=[label("other")] if default else None),
        PythonTask(name="after", function=lambda said: said + "!", returns=["final"]),
    ])


@pytest.mark.parametrize(("mode", "branch", "said"), [
    ("fast", "fast", "fast"),
    (2, "2", "two"),  # str(2) == "2"
    (True, "True", "yes"),  # str(True) == "True"
    ("slow", "default", "other"),
])
async def test_picks_the_branch_for_str_of_the_value(runtime: Runtime, mode: Any, branch: str,
                                                     said: str) -> None:
    events, log = await run_events(routed(), runtime, {"mode": mode})
    assert terminal(events) == ["run.completed"]
    assert [s for s in log.steps if s.startswith("route.")] == [f"route.{branch}.say"]
    assert log.steps["route"].attempts[0].output_parameters == {"said": said}
    assert log.steps["after"].attempts[0].output_parameters == {"final": said + "!"}


async def test_no_branch_and_no_default_fails_naming_value_and_keys(runtime: Runtime) -> None:
    events, log = await run_events(routed(default=False), runtime, {"mode": "slow"})
    assert terminal(events) == ["run.failed"]
    assert log.error is not None and log.error.step == "route"
    assert log.error.message == (
        "conditional step 'route': parameter 'mode' is 'slow'; no branch for 'slow' and no "
        "default (branches: fast, 2, True)")


async def test_missing_parameter_fails_naming_it(runtime: Runtime) -> None:
    _, log = await run_events(routed(), runtime, {})
    assert log.error is not None
    assert "needs parameter 'mode', which is not set" in log.error.message


async def test_branch_sees_earlier_params_and_its_own_returns(runtime: Runtime) -> None:
    async def pick() -> tuple[str, str]:
        return "deep", "context!"

    async def first(context: str) -> str:
        return context.upper()

    async def second(context: str, shout: str) -> str:
        return f"{context}/{shout}"

    p = AsyncPipeline("vis", [
        AsyncPythonTask(name="pick", function=pick, returns=["mode", "context"]),
        Conditional("route", parameter="mode", branches={"deep": [
            AsyncPythonTask(name="one", function=first, returns=["shout"]),
            AsyncPythonTask(name="two", function=second, returns=["both"]),
        ]}),
        PythonTask(name="after", function=lambda both, shout: f"{both}|{shout}",
                   returns=["out"]),
    ])
    _, log = await run_events(p, runtime)
    assert log.status == "completed"
    assert log.steps["after"].attempts[0].output_parameters == {
        "out": "context!/CONTEXT!|CONTEXT!"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"branches": {"a.b": [label("x")]}}, "branch key 'a.b' must be 1-100 letters"),
    ({"branches": {}}, "non-empty mapping"),
    ({"branches": {"1": [label("x")], 1: [label("y")]}}, "two branches for value '1'"),
    ({"branches": {"default": [label("x")]}, "default": [label("y")]}, "would share the path"),
    ({"parameter": "not valid"}, "parameter must be a parameter name"),
])
def test_definition_errors(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"parameter": "mode", "branches": {"a": [label("x")]}}
    with pytest.raises(PipelineDefinitionError, match=message):
        Conditional("c", **{**args, **kwargs})
