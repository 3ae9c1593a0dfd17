"""A run's buffer (runstream_sse._buffer): reading after a cursor, waiting, backpressure."""

from __future__ import annotations

import asyncio

from runstream_sse._buffer import RunBuffer


def fill(buffer: RunBuffer, first: int, last: int) -> None:
    for seq in range(first, last + 1):
        buffer.publish(seq, "step.event", f"id: {seq}\n\n")


def test_since_returns_the_frames_after_a_cursor_and_counts_what_was_dropped() -> None:
    buffer = RunBuffer("r", max_events=4)
    assert buffer.since(0) == ([], 0)
    fill(buffer, 1, 3)
    assert [f[0] for f in buffer.since(0)[0]] == [1, 2, 3]
    assert [f[0] for f in buffer.since(2)[0]] == [3]
    assert buffer.since(3) == ([], 0)
    fill(buffer, 4, 10)  # only 7..10 are kept
    frames, missed = buffer.since(2)
    assert [f[0] for f in frames] == [7, 8, 9, 10] and missed == 4
    assert [f[0] for f in buffer.since(8)[0]] == [9, 10]
    assert buffer.since(99) == ([], 0)


def test_lifecycle_frames_are_marked() -> None:
    buffer = RunBuffer("r", max_events=10)
    buffer.publish(1, "run.started", "a")
    buffer.publish(2, "step.event", "b")
    buffer.publish(3, "run.completed", "c")
    assert [(f[1], f[2]) for f in buffer.since(0)[0]] == [
        ("run.started", False), ("step.event", True), ("run.completed", True)]
    assert buffer.terminal == "run.completed"


async def test_a_primary_reader_holds_the_publisher_instead_of_losing_frames() -> None:
    buffer = RunBuffer("r", max_events=3)
    buffer.hold(0)
    assert buffer.publish(1, "step.event", "1") is None
    assert buffer.publish(2, "step.event", "2") is None
    room = buffer.publish(3, "step.event", "3")
    assert room is not None and not room.done()  # one more would drop frame 1, unsent
    buffer.hold(1)  # the reader sent frame 1
    assert room.done()
    full = buffer.publish(4, "step.event", "4")  # 2, 3, 4 kept, none sent: full again
    assert [f[0] for f in buffer.since(1)[0]] == [2, 3, 4]
    assert full is not None and not full.done()
    buffer.release()  # the reader left: the publisher may drop frames again
    assert full.done()
    assert buffer.publish(5, "step.event", "5") is None


async def test_readers_wait_for_frames_pings_time_out_and_end_wakes_everyone() -> None:
    buffer = RunBuffer("r", max_events=10)
    assert await buffer.wait(0.01) is False
    waiters = [asyncio.create_task(buffer.wait(None)) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()  # one reader leaving does not cancel the others' wait
    await asyncio.sleep(0)
    fill(buffer, 1, 1)
    assert await asyncio.gather(*waiters[1:]) == [True, True]
    buffer.end()
    assert await buffer.wait(None) is True and buffer.ended
