"""Many runs in flight in one event loop never see each other's parameters or events."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator
from typing import Any

from runstream import AsyncPipeline, Runtime, current_task_context
from runstream_async_python import AsyncPythonTask, PythonTask

N_RUNS = 200


async def tokens(prompt: str, user: int) -> AsyncGenerator[dict[str, Any], None]:
    for i in range(5):
        # Random sleeps interleave the runs in a different order every time.
        await asyncio.sleep(random.random() / 200)
        ctx = current_task_context()
        yield {"type": "chunk", "text": f"{prompt}#{i}", "user": user,
               "ctx_prompt": ctx.parameters["prompt"], "run_id": ctx.run_id}
    yield {"type": "done", "full_text": prompt}


def echo(full_text: str, user: int) -> str:
    return f"{user}:{full_text}"


def pipeline() -> AsyncPipeline:
    return AsyncPipeline("iso", [
        AsyncPythonTask(name="llm", function=tokens, returns=["full_text"]),
        PythonTask(name="echo", function=echo, returns=["echo"]),
    ])


async def test_200_streaming_runs_see_only_their_own_parameters_and_events(
        runtime: Runtime) -> None:
    p = pipeline()

    async def one(user: int) -> tuple[int, str, list[Any]]:
        run_id = f"user-{user}"
        got = [e async for e in p.execute_streaming({"prompt": f"prompt-{user}", "user": user},
                                                    run_id=run_id, config=runtime)]
        return user, run_id, got

    results = await asyncio.gather(*(one(u) for u in range(N_RUNS)))
    for user, run_id, got in results:
        chunks = [e for e in got if e["type"] == "chunk"]
        assert [c["text"] for c in chunks] == [f"prompt-{user}#{i}" for i in range(5)]
        assert {c["user"] for c in chunks} == {user}
        assert {c["ctx_prompt"] for c in chunks} == {f"prompt-{user}"}
        assert {c["run_id"] for c in chunks} == {run_id}
        assert got[-1] == {"type": "done", "full_text": f"prompt-{user}"}
    for user in range(N_RUNS):
        log = await runtime.store.get(f"user-{user}")
        assert log.status == "completed"
        assert log.steps["echo"].attempts[0].output_parameters == {
            "echo": f"{user}:prompt-{user}"}


async def test_200_typed_streams_keep_their_own_seq_and_run_id(runtime: Runtime) -> None:
    p = pipeline()

    async def one(user: int) -> None:
        handle = p.stream({"prompt": f"p{user}", "user": user}, config=runtime)
        events = [e async for e in handle]
        assert {e.run_id for e in events} == {handle.run_id}
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        data = [e.data for e in events if e.type == "step.event"]
        assert all(d["user"] == user for d in data if d["type"] == "chunk")

    await asyncio.gather(*(one(u) for u in range(N_RUNS)))


async def test_concurrent_runs_on_the_sqlite_store(in_tmp_cwd: Any) -> None:
    runtime = Runtime()  # default config: sqlite in .runstream/
    try:
        p = pipeline()
        logs = await asyncio.gather(*(
            p.execute({"prompt": f"s{u}", "user": u}, config=runtime) for u in range(N_RUNS)))
        assert all(log.status == "completed" for log in logs)
        listed = await runtime.store.list_runs(limit=1000)
        assert len(listed) == N_RUNS
        for log in logs[:20]:
            stored = await runtime.store.get(log.run_id)
            assert stored.parameters["prompt"] == log.parameters["prompt"]
    finally:
        await runtime.aclose()
