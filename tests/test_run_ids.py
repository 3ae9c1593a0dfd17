"""A run id is claimed before any sink opens, or the run does not start (issue 10, item 5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    Limits,
    RunIdError,
    RunLog,
    Runtime,
    hookimpl,
    new_run_id,
)
from runstream._store_memory import MemoryStore
from runstream.testing import read_jsonl
from runstream_async_python import AsyncPythonTask

#: While set, the store's writes hang (a locked or slow database).
STALLED = asyncio.Event()


class StallingStore(MemoryStore):
    async def create(self, run_log: RunLog) -> None:
        if STALLED.is_set():
            await asyncio.sleep(3600)
        await super().create(run_log)

    async def save(self, run_log: RunLog) -> None:
        if STALLED.is_set():
            await asyncio.sleep(3600)
        await super().save(run_log)


class _Stores:
    @staticmethod
    @hookimpl
    def register_run_log_stores(register: Any) -> None:
        register("stalling", StallingStore)


async def words(word: str) -> AsyncGenerator[dict[str, Any], None]:
    for i in range(3):
        yield {"type": "chunk", "text": f"{word}{i}"}


PIPELINE = AsyncPipeline("p", [AsyncPythonTask(name="llm", function=words)])


@pytest.fixture
async def runtime(in_tmp_cwd: Path) -> AsyncGenerator[Runtime, None]:
    STALLED.clear()
    config = Config(run_log_store=ComponentConfig(type="stalling"),
                    sinks=[ComponentConfig(type="file", path="events/{run_id}.jsonl")],
                    limits=Limits(store_timeout=0.05, store_save_timeout=0.05,
                                  store_retry_period=0.2))
    rt = Runtime(config, plugins=[_Stores()])
    yield rt
    STALLED.clear()
    await rt.aclose()


def _texts(path: Path) -> list[str]:
    return [e["data"].get("text") for e in read_jsonl(path) if e["type"] == "step.event"]


async def test_a_reused_id_is_refused_while_the_store_is_slow(runtime: Runtime) -> None:
    first = await PIPELINE.execute({"word": "a"}, run_id="dup-1", config=runtime)
    assert first.status == "completed"
    events = Path("events/dup-1.jsonl")
    before = events.read_bytes()
    STALLED.set()  # the store cannot confirm the id any more
    handle = PIPELINE.stream({"word": "b"}, run_id="dup-1", config=runtime)
    with pytest.raises(RunIdError, match="could not be claimed"):
        async for _ in handle:
            pass
    # No sink opened for the refused run: the first run's event file is as it was.
    assert events.read_bytes() == before
    assert _texts(events) == ["a0", "a1", "a2"]
    STALLED.clear()
    await runtime.recorder.aclose(5)
    stored = await runtime.store.get("dup-1")
    assert stored.status == "completed" and stored.parameters == {"word": "a"}


async def test_a_reused_id_is_refused_while_its_run_is_in_flight(runtime: Runtime) -> None:
    gate = asyncio.Event()

    async def held(word: str) -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "chunk", "text": word}
        await gate.wait()

    pipeline = AsyncPipeline("p", [AsyncPythonTask(name="llm", function=held)])
    first = pipeline.stream({"word": "a"}, run_id="dup-2", config=runtime)
    streaming = asyncio.Event()

    async def read_first() -> list[str]:
        types = []
        async for event in first:
            types.append(event.type)
            if event.type == "step.event":
                streaming.set()
        return types

    reader = asyncio.create_task(read_first())
    await streaming.wait()
    second = pipeline.stream({"word": "b"}, run_id="dup-2", config=runtime)
    with pytest.raises(RunIdError, match="in flight"):
        async for _ in second:
            pass
    gate.set()
    assert (await reader)[-1] == "run.completed"
    assert (await first.result()).status == "completed"
    assert _texts(Path("events/dup-2.jsonl")) == ["a"]


async def test_a_fresh_id_goes_on_while_the_store_is_slow(runtime: Runtime) -> None:
    """Without a given id the run needs no confirmation: its id has 128 random bits."""
    STALLED.set()
    handle = PIPELINE.stream({"word": "c"}, config=runtime)
    events = [e async for e in handle]
    assert events[-1].type == "run.completed"
    assert _texts(Path(f"events/{handle.run_id}.jsonl")) == ["c0", "c1", "c2"]


async def test_an_id_from_new_run_id_needs_no_confirmation(runtime: Runtime) -> None:
    # runstream-sse picks its runs' ids with new_run_id() (for X-Run-Id): with the store down,
    # such a run streams as a run given no id does (found with PostgreSQL stopped: every chat
    # failed with "could not be claimed"). A copy of the string is a caller's choice again.
    STALLED.set()
    fresh = new_run_id()
    events = [e async for e in PIPELINE.stream({"word": "f"}, run_id=fresh, config=runtime)]
    assert events[-1].type == "run.completed"
    assert [e.data["text"] for e in events if e.type == "step.event"] == ["f0", "f1", "f2"]
    with pytest.raises(RunIdError, match="could not be claimed"):
        async for _ in PIPELINE.stream({"word": "g"}, run_id="".join(new_run_id()),
                                       config=runtime):
            pass
