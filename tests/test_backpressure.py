"""Bounded channels: events flow while the task runs, and a stalled consumer stalls the producer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from runstream import AsyncPipeline, Runtime
from runstream._pipeline import CHANNEL_CAPACITY
from runstream_async_python import AsyncPythonTask


async def test_events_reach_the_consumer_while_a_never_awaiting_generator_runs(
        runtime: Runtime) -> None:
    produced = 0

    async def busy() -> AsyncGenerator[dict[str, Any], None]:
        nonlocal produced
        for i in range(50_000):
            produced += 1
            yield {"i": i}  # never awaits

    p = AsyncPipeline("busy", [AsyncPythonTask(name="gen", function=busy)])
    agen = p.execute_streaming(config=runtime)
    first = await agen.__anext__()
    assert first == {"i": 0}
    # The first event arrived long before the generator finished.
    assert produced < 50_000 // 4
    rest = [e async for e in agen]
    assert len(rest) == 49_999 and rest[-1] == {"i": 49_999}


async def test_a_consumer_that_stops_reading_stops_the_producer(runtime: Runtime) -> None:
    produced = 0

    async def endless() -> AsyncGenerator[dict[str, Any], None]:
        nonlocal produced
        while True:
            produced += 1
            yield {"blob": "x" * 1000}

    p = AsyncPipeline("endless", [AsyncPythonTask(name="gen", function=endless)])
    handle = p.stream(config=runtime)
    iterator = handle.__aiter__()
    await iterator.__anext__()  # read one, then stop reading
    for _ in range(50):
        await asyncio.sleep(0.001)
    stalled_at = produced
    for _ in range(50):
        await asyncio.sleep(0.001)
    assert produced == stalled_at  # the producer is parked, not buffering without bound
    assert produced <= CHANNEL_CAPACITY + 10
    await handle.cancel()
    assert (await handle.result()).status == "cancelled"


async def test_slow_consumer_slows_producer_and_gets_every_event(runtime: Runtime) -> None:
    lead: list[int] = []
    produced = 0
    consumed = 0

    async def fast() -> AsyncGenerator[dict[str, Any], None]:
        nonlocal produced
        for i in range(5_000):
            produced += 1
            lead.append(produced - consumed)
            yield {"i": i}

    p = AsyncPipeline("fast", [AsyncPythonTask(name="gen", function=fast)])
    got = []
    async for e in p.execute_streaming(config=runtime):
        consumed += 1
        got.append(e["i"])
        if consumed % 100 == 0:
            await asyncio.sleep(0.001)
    assert got == list(range(5_000))
    assert max(lead) <= CHANNEL_CAPACITY + 1


async def test_result_without_iterating_does_not_block_the_run(runtime: Runtime) -> None:
    async def many() -> AsyncGenerator[dict[str, Any], None]:
        for i in range(10 * CHANNEL_CAPACITY):
            yield {"i": i}

    p = AsyncPipeline("many", [AsyncPythonTask(name="gen", function=many)])
    log = await asyncio.wait_for(p.stream(config=runtime).result(), timeout=10)
    assert log.status == "completed"
