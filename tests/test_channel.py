"""The batching channel behind execute_streaming()/stream(), and TaskContext.emit_nowait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    Limits,
    RunFailedError,
    Runtime,
    Task,
    TaskContext,
)
from runstream._channel import Channel
from runstream.testing import CollectingSink, make_runtime
from runstream_async_python import AsyncPythonTask


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


async def test_big_items_hold_producers_at_max_bytes_long_before_capacity() -> None:
    channel: Channel[int] = Channel(capacity=1024, batch=256, max_bytes=10_000)
    produced = 0

    async def produce() -> None:
        nonlocal produced
        for i in range(1000):
            waiter = channel.push(i, 1_000)
            produced += 1
            if waiter is not None:
                await waiter

    producer = asyncio.create_task(produce())
    batches = channel.batches()
    first = await anext(batches)  # the reader takes one batch and stops reading
    for _ in range(100):  # loop turns, not time: an unblocked producer would go on
        await asyncio.sleep(0)
    held = len(first) + len(channel)
    # Queued bytes (the held batch included) stay within max_bytes plus the one item that
    # found the channel full.
    assert held == produced and held * 1_000 <= 10_000 + 1_000, held
    assert not producer.done()
    # Coming back for more makes room again, and nothing is lost.
    got = list(first)
    async for batch in batches:
        got += batch
        if len(got) == 1000:
            break
    await producer
    assert got == list(range(1000))


async def test_a_waiting_consumer_gets_big_items_a_quarter_of_max_bytes_at_a_time() -> None:
    channel: Channel[int] = Channel(capacity=1024, batch=256, max_bytes=8_000)
    sizes: list[int] = []

    async def consume() -> None:
        async for batch in channel.batches():
            sizes.append(len(batch))

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)  # the consumer is waiting
    for i in range(40):
        waiter = channel.push(i, 1_000)
        if waiter is not None:
            await waiter
    channel.close()
    await consumer
    assert sum(sizes) == 40 and max(sizes) <= 2


async def test_a_stalled_reader_parks_a_task_of_big_events_at_max_queued_bytes() -> None:
    """The run's channel bounds queued bytes: 100 KB events, 1 MB of room, a reader that
    stops after its first event."""
    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory"),
                             limits=Limits(max_queued_bytes=1_000_000)))
    produced = 0

    async def big() -> AsyncGenerator[dict[str, Any], None]:
        nonlocal produced
        for i in range(2_000):  # 200 MB if nothing held it back
            produced += 1
            yield {"i": i, "pad": "x" * 100_000}

    try:
        p = AsyncPipeline("big", [AsyncPythonTask(name="big", function=big)])
        async with p.stream(config=runtime) as handle:
            events = aiter(handle)
            while (await anext(events)).type != "step.event":
                pass
            for _ in range(200):  # loop turns: an unblocked producer would go on
                await asyncio.sleep(0)
            # 1 MB of queued events, one batch held by the reader (counted too), and the
            # one event that found the channel full.
            assert produced <= 1_000_000 // 100_000 + 2, produced
    finally:
        await runtime.aclose()


def test_capacity_batch_and_max_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Channel(capacity=0)
    with pytest.raises(ValueError):
        Channel(batch=0)
    with pytest.raises(ValueError):
        Channel(max_bytes=0)


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


async def test_a_direct_consumer_takes_items_in_order_and_leaves_the_rest_to_the_batches(
        ) -> None:
    channel: Channel[int] = Channel(capacity=64, batch=16)
    taken: list[int] = []
    refuse = {5, 6}

    def take(item: int) -> bool:
        if item in refuse:
            return False
        if item == 9:
            raise ValueError("counts as a refusal")
        taken.append(item)
        return True

    channel.take_directly(take)
    for i in range(5):
        assert channel.push(i) is None
    assert taken == [0, 1, 2, 3, 4] and len(channel) == 0  # in no batch, no wake-up
    channel.push(5)  # left: it and everything after it queue until its batch is consumed
    channel.push(7)
    assert taken == [0, 1, 2, 3, 4] and len(channel) == 2
    batches = channel.batches()
    assert await anext(batches) == [5, 7]
    channel.push(8)  # the batch is still held: behind it
    assert taken == [0, 1, 2, 3, 4]
    assert await anext(batches) == [8]  # coming back consumed [5, 7]
    waiting = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)  # the consumer comes back: nothing is held or queued any more
    channel.push(11)
    channel.push(9)  # raised: left, and what follows too
    channel.push(10)
    assert taken == [0, 1, 2, 3, 4, 11]
    assert await waiting == [9, 10]
    channel.take_directly(None)
    channel.push(12)  # nobody takes directly any more
    assert taken == [0, 1, 2, 3, 4, 11] and len(channel) == 1


async def test_a_producer_that_never_awaits_yields_while_items_are_taken_directly() -> None:
    channel: Channel[int] = Channel(capacity=64, batch=16)
    channel.take_directly(lambda item: True)
    waits = [i for i in range(64) if channel.push(i) is not None]
    assert waits == [15, 31, 47, 63]  # one yield per batch's worth, no more
    channel.limit_bytes(400)  # a quarter: 100 bytes
    waits = [i for i in range(10) if channel.push(i, 30) is not None]
    assert waits == [3, 7]
    waiter = channel.push(0, 100)
    assert waiter is not None
    await waiter  # done on the loop's next iteration
