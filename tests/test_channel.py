"""The batching channel behind execute_streaming()/stream(), and TaskContext.emit_nowait."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from runstream import AsyncPipeline, RunFailedError, Runtime, Task, TaskContext
from runstream._channel import Channel
from runstream.testing import CollectingSink, make_runtime


async def test_items_arrive_in_order_and_close_ends_the_iteration() -> None:
    channel: Channel[int] = Channel(capacity=8, batch=4)

    async def produce() -> None:
        for i in range(100):
            waiter = channel.push(i)
            if waiter is not None:
                await waiter
        channel.close()

    got: list[int] = []

    async def consume() -> None:
        async for item in channel:
            got.append(item)
            if item % 7 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(produce(), consume())
    assert got == list(range(100))


async def test_a_never_awaiting_producer_hands_over_a_batch_at_a_time() -> None:
    channel: Channel[int] = Channel(capacity=64, batch=16)
    sizes: list[int] = []

    async def consume() -> None:
        async for batch in channel.batches():
            sizes.append(len(batch))

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)  # the consumer is waiting
    for i in range(160):
        waiter = channel.push(i)
        if waiter is not None:
            await waiter
    channel.close()
    await consumer
    assert sum(sizes) == 160
    assert max(sizes) == 16  # handed over as soon as a batch was ready, not at capacity


async def test_a_slow_consumer_holds_producers_at_capacity() -> None:
    channel: Channel[int] = Channel(capacity=32, batch=8)
    produced = consumed = 0
    lead: list[int] = []

    async def produce() -> None:
        nonlocal produced
        for i in range(500):
            produced += 1
            lead.append(produced - consumed)
            waiter = channel.push(i)
            if waiter is not None:
                await waiter
        channel.close()

    async def consume() -> None:
        nonlocal consumed
        async for _ in channel:
            consumed += 1
            await asyncio.sleep(0)  # a reader that awaits, e.g. a socket write

    await asyncio.gather(produce(), consume())
    assert consumed == 500
    # A batch the consumer holds still counts: unconsumed items never exceed the capacity.
    assert max(lead) <= 32 + 1


async def test_detach_ends_the_current_batch_and_frees_producers() -> None:
    channel: Channel[int] = Channel(capacity=4, batch=4)
    for i in range(3):
        assert channel.push(i) is None
    waiter = channel.push(3)
    assert waiter is not None  # full
    seen: list[int] = []
    async for item in channel:
        seen.append(item)
        if item == 1:
            channel.detach()
    assert seen == [0, 1]
    assert waiter.done()
    assert channel.push(99) is None and len(channel) == 0  # dropped, never blocks


async def test_release_stops_backpressure() -> None:
    channel: Channel[int] = Channel(capacity=2, batch=2)
    channel.push(0)
    waiter = channel.push(1)
    assert waiter is not None
    channel.release()
    assert waiter.done()
    assert all(channel.push(i) is None for i in range(10))


def test_capacity_and_batch_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Channel(capacity=0)
    with pytest.raises(ValueError):
        Channel(batch=0)


class Burst(Task):
    """Emits with emit_nowait in a tight loop, awaiting only when told to."""

    count: int = 3000

    async def execute(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        for i in range(self.count):
            waiter = ctx.emit_nowait({"i": i})
            if waiter is not None:
                await waiter
        return None


class NotADict(Task):
    async def execute(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        ctx.emit_nowait(["not", "a", "dict"])  # type: ignore[arg-type]
        return None


async def test_emit_nowait_streams_every_event_with_backpressure(runtime: Runtime) -> None:
    p = AsyncPipeline("burst", [Burst(name="burst")])
    got = [e["i"] async for e in p.execute_streaming(config=runtime)]
    assert got == list(range(3000))  # more than the channel holds: it waited, lost nothing


async def test_emit_nowait_reaches_sinks_too() -> None:
    sink = CollectingSink()
    runtime = make_runtime(sinks=[sink])
    try:
        p = AsyncPipeline("burst", [Burst(name="burst", count=50)])
        got = [e async for e in p.execute_streaming(config=runtime)]
    finally:
        await runtime.aclose()
    assert len(got) == 50
    assert [e.data["i"] for e in sink.events if e.type == "step.event"] == list(range(50))


async def test_emit_nowait_rejects_a_non_dict(runtime: Runtime) -> None:
    p = AsyncPipeline("bad", [NotADict(name="bad")])
    with pytest.raises(RunFailedError) as info:
        await p.execute(config=runtime)
    log = info.value.run_log
    assert log.error is not None and log.error.type == "TaskError"
    assert "emitted a list" in log.error.message
