"""runstream-async-python: AsyncPythonTask and PythonTask."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Generator
from typing import Any

import pytest
from pydantic import ValidationError
from runstream import AsyncPipeline, RunFailedError, Runtime
from runstream_async_python import AsyncPythonTask, PythonTask


async def run(task: Any, runtime: Runtime, **params: Any) -> tuple[list[Any], dict[str, Any]]:
    p = AsyncPipeline("t", [task])
    events = [e async for e in p.execute_streaming(params, run_id="t-1", config=runtime)]
    log = await runtime.store.get("t-1")
    return events, log.steps[task.name].attempts[0].output_parameters


async def test_coroutine_single_return(runtime: Runtime) -> None:
    async def add(a: int, b: int = 10) -> int:
        return a + b

    events, out = await run(AsyncPythonTask(name="s", function=add, returns=["total"]),
                            runtime, a=1)
    assert events == [] and out == {"total": 11}


async def test_coroutine_several_returns_tuple_or_mapping(runtime: Runtime) -> None:
    async def pair() -> tuple[int, str]:
        return 1, "x"

    async def mapping() -> dict[str, Any]:
        return {"n": 1, "s": "x", "extra": True}

    _, out = await run(AsyncPythonTask(name="s", function=pair, returns=["n", "s"]), runtime)
    assert out == {"n": 1, "s": "x"}
    rt2 = runtime
    p = AsyncPipeline("m", [AsyncPythonTask(name="m", function=mapping, returns=["n", "s"])])
    log = await p.execute(config=rt2)
    assert log.steps["m"].attempts[0].output_parameters == {"n": 1, "s": "x"}


async def test_async_generator_returns_from_last_done(runtime: Runtime) -> None:
    async def gen() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "done", "full_text": "draft"}
        yield {"type": "chunk", "text": "more"}
        yield {"type": "done", "full_text": "final"}

    events, out = await run(AsyncPythonTask(name="g", function=gen, returns=["full_text"]),
                            runtime)
    assert len(events) == 3 and out == {"full_text": "final"}


async def test_done_type_is_configurable(runtime: Runtime) -> None:
    async def gen() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "done", "answer": "wrong"}
        yield {"type": "result", "answer": 42}

    task = AsyncPythonTask(name="g", function=gen, returns=["answer"], done_type="result")
    _, out = await run(task, runtime)
    assert out == {"answer": 42}


async def test_generator_without_done_but_with_returns_fails(runtime: Runtime) -> None:
    async def gen() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "chunk"}

    with pytest.raises(RunFailedError, match="never yielded a \\{'type': 'done'"):
        await run(AsyncPythonTask(name="g", function=gen, returns=["x"]), runtime)


async def test_sync_function_given_to_async_task_fails_clearly(runtime: Runtime) -> None:
    def sync() -> int:
        return 1

    with pytest.raises(RunFailedError, match="is not async.*use PythonTask"):
        await run(AsyncPythonTask(name="s", function=sync), runtime)


async def test_generator_is_closed_when_its_step_ends_early(runtime: Runtime) -> None:
    closed = asyncio.Event()

    async def gen() -> AsyncGenerator[Any, None]:
        try:
            yield {"type": "chunk"}
            yield 5
            yield {"type": "never"}
        finally:
            closed.set()

    with pytest.raises(RunFailedError, match="emitted a int"):
        await run(AsyncPythonTask(name="g", function=gen), runtime)
    assert closed.is_set()


async def test_python_task_runs_in_a_worker_thread(runtime: Runtime) -> None:
    main = threading.get_ident()
    seen: list[int] = []

    def work(x: int) -> int:
        seen.append(threading.get_ident())
        return x * 2

    _, out = await run(PythonTask(name="w", function=work, returns=["y"]), runtime, x=21)
    assert out == {"y": 42} and seen and seen[0] != main


async def test_python_generator_streams_from_its_thread(runtime: Runtime) -> None:
    def gen(n: int) -> Generator[dict[str, Any], None, None]:
        for i in range(n):
            yield {"type": "chunk", "i": i, "thread": threading.current_thread().name}
        yield {"type": "done", "count": n}

    events, out = await run(PythonTask(name="g", function=gen, returns=["count"]), runtime,
                            n=2000)
    assert [e["i"] for e in events[:-1]] == list(range(2000))
    assert out == {"count": 2000}
    assert events[0]["thread"] != threading.current_thread().name


async def test_python_task_refuses_async_functions(runtime: Runtime) -> None:
    async def f() -> None:
        return None

    with pytest.raises(RunFailedError, match="is async; use AsyncPythonTask"):
        await run(PythonTask(name="p", function=f), runtime)


def test_function_field_validation() -> None:
    with pytest.raises(ValidationError, match="must be callable"):
        AsyncPythonTask(name="x", function=42)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cannot import module 'no_such_module_xyz'"):
        AsyncPythonTask(name="x", function="no_such_module_xyz:f")  # type: ignore[arg-type]
    task = AsyncPythonTask(name="x", function="examples.hello_stream:greet")  # type: ignore[arg-type]
    assert task.model_dump(mode="json")["function"] == "examples.hello_stream:greet"
    with pytest.raises(ValidationError, match="valid Python identifier"):
        AsyncPythonTask(name="x", function=run, returns=["not-valid"])
