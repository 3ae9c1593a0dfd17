"""Which parameters a pipeline reads (``runstream run --param`` warns about the others)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from runstream import AsyncPipeline, Branch, Conditional, Map, Parallel, Task, TaskContext
from runstream._reads import parameters_read
from runstream_async_python import AsyncPythonTask


async def ask(question: str, tone: str = "plain") -> str:
    return question


async def stream(topic: str) -> AsyncIterator[dict[str, Any]]:
    yield {"topic": topic}


async def helper_reads_context() -> None:
    from runstream import current_task_context

    current_task_context().parameter("anything")


class Opaque(Task):
    """A task type that does not say what it reads."""

    async def execute(self, ctx: TaskContext) -> None:
        ctx.parameter("secret_name")


def step(name: str, fn: Any = ask, returns: list[str] | None = None) -> AsyncPythonTask:
    return AsyncPythonTask(name=name, function=fn, returns=returns or [])


def test_names_from_functions_nodes_returns_and_handlers() -> None:
    pipeline = AsyncPipeline("p", [
        step("a", returns=["answer"]),
        Parallel("fan", {"x": [step("s", stream)],
                         "y": Branch([step("t", stream)], on_failure=step("h", ask))}),
        Map("each", over="items", iterate_as="item", returns=["out"],
            branch=[step("m", stream, returns=["out"])]),
        Conditional("route", parameter="mode", branches={"a": [step("c", ask)]},
                    default=[step("d", stream)]),
    ], on_failure=step("report", ask))

    assert parameters_read(pipeline) == {"question", "tone", "answer", "topic", "items", "item",
                                         "out", "mode"}


def test_a_step_that_cannot_tell_makes_the_answer_unknown() -> None:
    assert parameters_read(AsyncPipeline("p", [step("a"), Opaque(name="o")])) is None
    assert parameters_read(AsyncPipeline("p", [
        step("a"), Parallel("fan", {"x": [step("b", helper_reads_context)]})])) is None
