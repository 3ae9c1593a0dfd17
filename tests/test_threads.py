"""Sync tasks stuck in cancelled runs cannot starve the run log store or other threads' users,
and a step that must wait for a task thread says why (issue 10, item 6)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    Event,
    Limits,
    Runtime,
)
from runstream_async_python import AsyncPythonTask, PythonTask

#: Hang guard: every wait on the system under test is bounded by this.
GUARD = 20.0
#: Blocked threads wait at most this long (longer than GUARD: they are released by the gate).
BLOCK = 120.0


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Blocks sync tasks until set; set at the end of the test so no thread is left behind."""
    event = threading.Event()
    yield event
    event.set()


def blocking_pipeline(gate: threading.Event) -> AsyncPipeline:
    def stuck() -> Generator[dict[str, Any], None, None]:
        yield {"type": "blocked"}
        gate.wait(BLOCK)  # ignores ctx.cancelled, like a blocking client call

    return AsyncPipeline("stuck", [PythonTask(name="wait", function=stuck)])


async def hello() -> str:
    return "hello"


QUICK = AsyncPipeline("quick", [AsyncPythonTask(name="hi", function=hello,
                                                returns=["greeting"])])


async def block_and_cancel(pipeline: AsyncPipeline, runtime: Runtime, n: int) -> list[str]:
    """Start ``n`` runs whose sync step blocks, wait until each blocks, then cancel them (as a
    client that disconnects does). Their threads stay busy."""
    ids = []
    for _ in range(n):
        handle = pipeline.stream(config=runtime)
        events = aiter(handle)
        event: Event = await asyncio.wait_for(anext(events), GUARD)
        while event.type != "step.event":
            event = await asyncio.wait_for(anext(events), GUARD)
        log = await asyncio.wait_for(handle.cancel("disconnected"), GUARD)  # as a client's
        assert log.status == "cancelled"                                # disconnect does
        await events.aclose()
        ids.append(handle.run_id)
    return ids


async def test_the_file_system_store_does_not_depend_on_the_default_executor(
        tmp_path: Path, gate: threading.Event) -> None:
    # Application code may fill the loop's default executor itself (asyncio.to_thread of a
    # blocking call that hangs): the store's I/O does not wait behind it.
    loop = asyncio.get_running_loop()
    default = ThreadPoolExecutor(2, thread_name_prefix="default")
    loop.set_default_executor(default)
    blocked = [loop.run_in_executor(None, gate.wait, BLOCK) for _ in range(2)]
    cfg = Config(run_log_store=ComponentConfig(type="file-system", path=str(tmp_path / "runs")),
                 limits=Limits(store_timeout=1.0, store_save_timeout=1.0))
    runtime = Runtime(cfg, entry_points=True)
    try:
        log = await asyncio.wait_for(QUICK.execute(config=runtime), GUARD)
        assert log.status == "completed" and log.warnings == []
        stored = await asyncio.wait_for(runtime.store.get(log.run_id), GUARD)
        assert stored.status == "completed"
        listed = await asyncio.wait_for(runtime.store.list_runs(), GUARD)
        assert [s.run_id for s in listed] == [log.run_id]
    finally:
        gate.set()
        await asyncio.wait_for(asyncio.gather(*blocked), GUARD)
        await runtime.aclose()
        default.shutdown(wait=True)
