"""A run's buffer (runstream_sse._buffer): reading after a cursor, waiting, backpressure."""

from __future__ import annotations

import asyncio
import sys

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


def frame(seq: int, size: int) -> str:
    """A frame of ``size`` bytes as the buffer counts them (ASCII text plus the overheads)."""
    from runstream_sse._buffer import FRAME_OVERHEAD

    text = f"id: {seq}\n\n"
    return text + "x" * (size - sys.getsizeof(text) - FRAME_OVERHEAD)


def test_max_bytes_drops_the_oldest_frames_but_never_the_newest() -> None:
    buffer = RunBuffer("r", max_events=1_000, max_bytes=10_000)
    for seq in range(1, 21):
        buffer.publish(seq, "step.event", frame(seq, 1_000))
    assert [f[0] for f in buffer.since(0)[0]] == list(range(11, 21))
    assert buffer.nbytes == 10_000
    buffer.publish(21, "step.event", frame(21, 50_000))  # bigger than the bound: kept alone
    assert [f[0] for f in buffer.since(0)[0]] == [21] and buffer.nbytes == 50_000
    buffer.publish(22, "step.event", frame(22, 1_000))
    assert [f[0] for f in buffer.since(0)[0]] == [22] and buffer.nbytes == 1_000


async def test_a_primary_reader_holds_the_publisher_at_max_bytes() -> None:
    buffer = RunBuffer("r", max_events=1_000, max_bytes=10_000)
    buffer.hold(0)
    rooms = [buffer.publish(seq, "step.event", frame(seq, 2_500)) for seq in range(1, 4)]
    assert rooms == [None, None, None]
    room = buffer.publish(4, "step.event", frame(4, 2_500))  # 10,000 bytes, none sent
    assert room is not None and not room.done()
    buffer.hold(2)  # the reader sent two frames: they may go
    assert room.done()
    assert buffer.publish(5, "step.event", frame(5, 2_500)) is None
    assert [f[0] for f in buffer.since(0)[0]] == [2, 3, 4, 5]  # only the sent frame 1 dropped
    # A primary reader that does not read: unsent frames are never dropped, the publisher
    # waits instead, with at most one frame past the bound.
    big = buffer.publish(6, "step.event", frame(6, 9_000))
    assert big is not None and not big.done()
    assert [f[0] for f in buffer.since(0)[0]] == [3, 4, 5, 6]  # the sent frame 2 dropped
    assert buffer.nbytes == 3 * 2_500 + 9_000
    buffer.release()
    assert big.done()
