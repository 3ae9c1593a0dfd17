"""How a run's records are kept in its Redis stream.

Each record is one stream entry whose id is ``{seq}-0``: the stream's own ordering is the run's
seq order, a cursor (``Last-Event-ID``) is a stream position as it is (``XREAD ... {seq}-0``
returns the records after it), and Redis's partial ids and ``XTRIM MINID`` take a seq directly.
(``0-{seq}`` would work as well for ordering, but partial ids and ``MINID`` would then be useless,
and ``0-0`` cannot be written, so seqs would have to start the sequence part at 1 anyway.)

The entry has one field, ``r``: the JSON of ``[ts, type, step, data]`` (the seq is the id),
compact, UTF-8 with lone surrogates kept (``surrogatepass``): any text a task emits comes back as
it went in. ``end`` adds one more entry, ``{last_seq}-1`` with the field ``e`` (the status): it
sorts after the run's last record and before any seq that could follow, so a reader blocked in
``XREAD`` learns at once that a run ended without a terminal record.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from runstream import TERMINAL_EVENT_TYPES

if TYPE_CHECKING:
    from runstream import EventRecord

__all__ = ["RECORD", "decode", "encode", "entry_id", "parse_entries", "seq_of"]

#: The field of a record's entry (an end marker has ``e`` instead).
RECORD = b"r"

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr).encode
_loads = json.loads


def entry_id(seq: int) -> bytes:
    return b"%d-0" % seq


def seq_of(entry: bytes) -> int:
    """The seq of a stream entry id (of an end marker: the last record's)."""
    return int(entry.partition(b"-")[0])


def encode(record: EventRecord) -> bytes:
    """The entry value of ``record`` (its size is what ``max_run_bytes`` counts)."""
    body: Any = [record[1], record[2], record[3], record[4]]
    try:
        text = _dumps(body)
    except (ValueError, RecursionError):  # a cycle in the data: keep what can be shown of it
        text = _dumps([record[1], record[2], record[3], {"repr": repr(record[4])}])
    return text.encode("utf-8", "surrogatepass")


def decode(entry: bytes, value: bytes) -> EventRecord:
    ts, type_, step, data = _loads(value.decode("utf-8", "surrogatepass"))
    return (seq_of(entry), ts, type_, step, data)


def parse_entries(entries: list[tuple[bytes, dict[bytes, bytes]]]
                  ) -> tuple[list[EventRecord], bytes, bool]:
    """The records of stream entries, the cursor after them, and whether the run ended."""
    batch: list[EventRecord] = []
    cursor = b""
    for entry, fields in entries:
        cursor = entry
        value = fields.get(RECORD)
        if value is None:  # the end marker
            return batch, cursor, True
        record = decode(entry, value)
        batch.append(record)
        if record[2] in TERMINAL_EVENT_TYPES:
            return batch, cursor, True
    return batch, cursor, False
