"""How records are kept as stream entries (runstream_redis._codec), and the paths of the real
log that the usual batches do not take."""

from __future__ import annotations

from typing import Any

from runstream import EventRecord
from runstream_redis._codec import encode, entry_id, parse_entries, seq_of

from tests._eventlog_contract import collect, record


def entries(records: list[EventRecord]) -> list[list[Any]]:
    return [[entry_id(r[0]), [b"r", encode(r)]] for r in records]


def test_entries_back_to_records() -> None:
    sent = [record(3), record(4), record(9, "run.completed", {})]  # a gap: trimmed, or resent
    batch, cursor, ended = parse_entries(entries(sent))
    assert (batch, cursor, ended) == (sent, b"9-0", True)
    batch, cursor, ended = parse_entries(entries(sent[:2]))
    assert (batch, cursor, ended) == (sent[:2], b"4-0", False)


def test_the_end_marker_ends_the_read() -> None:
    marker = [b"4-1", [b"e", b"failed"]]
    assert parse_entries([marker]) == ([], b"4-1", True)
    sent = [record(4)]
    assert parse_entries([*entries(sent), marker]) == (sent, b"4-1", True)
    assert seq_of(b"4-1") == 4


def test_data_json_cannot_hold_is_kept_as_its_repr() -> None:
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    batch, _, _ = parse_entries(entries([(1, 1.0, "step.event", "s", cyclic),
                                         (2, 1.0, "step.event", "s", {"set": {1}})]))
    assert batch[0][4] == {"repr": repr(cyclic)}
    assert batch[1][4] == {"set": "{1}"}
    assert b"\n" not in encode((1, 1.0, "t", None, {"x": "a\nb\r\x00"}))


async def test_a_batch_whose_seqs_are_not_contiguous(make_log: Any) -> None:
    log = make_log()
    await log.create("g", pipeline="p", owner=None)
    await log.append("g", [record(1), record(2), record(5), record(7, "run.completed", {})])
    await log.end("g", "completed")
    assert [r[0] for r in await collect(log, "g")] == [1, 2, 5, 7]
    await log.close()
