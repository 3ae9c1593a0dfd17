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
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from runstream import TERMINAL_EVENT_TYPES

if TYPE_CHECKING:
    from runstream import EventRecord

__all__ = ["RECORD", "encode", "entry_id", "parse_entries", "parse_published", "seq_of",
           "text_of"]

#: The field of a record's entry (an end marker has ``e`` instead).
RECORD = b"r"


def _encoder() -> Callable[[Any], str]:
    """Compact JSON, non-ASCII as it is, ``repr`` for what JSON cannot hold.

    ``json.dumps`` builds its C encoder again for every call, which is most of what a small
    record costs; this one is built once (the same C encoder, with the same arguments as
    ``JSONEncoder.iterencode`` passes it). A cycle raises RecursionError instead of ValueError.
    """
    try:
        from json.encoder import (  # type: ignore[attr-defined]
            c_make_encoder,
            encode_basestring,
        )
    except ImportError:  # pragma: no cover - an interpreter without the C accelerator
        c_make_encoder = None
    if c_make_encoder is None:  # pragma: no cover
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr).encode
    make = c_make_encoder(None, repr, encode_basestring, None, ":", ",", False, False, True)
    join = "".join
    return lambda value: join(make(value, 0))


_dumps = _encoder()
_loads = json.loads


def entry_id(seq: int) -> bytes:
    return b"%d-0" % seq


def seq_of(entry: bytes) -> int:
    """The seq of a stream entry id (of an end marker: the last record's)."""
    return int(entry.partition(b"-")[0])


def text_of(value: Any) -> str:
    """A field Redis gave back, as the text it was written from (lone surrogates too)."""
    return bytes(value).decode("utf-8", "surrogatepass")


def encode(record: EventRecord) -> bytes:
    """The entry value of ``record`` (its size is what ``max_run_bytes`` counts)."""
    body: Any = [record[1], record[2], record[3], record[4]]
    try:
        text = _dumps(body)
    except (ValueError, RecursionError):  # a cycle in the data: keep what can be shown of it
        text = _dumps([record[1], record[2], record[3], {"repr": repr(record[4])}])
    return text.encode("utf-8", "surrogatepass")


def parse_entries(entries: list[list[Any]]) -> tuple[list[EventRecord], bytes, bool]:
    """The records of raw ``XREAD`` entries (``[id, [field, value]]``), the cursor after them,
    and whether the run ended (its terminal record, or the end marker: only ever the stream's
    last entry). The values are decoded as one JSON array: one call for the whole batch."""
    cursor = entries[-1][0]
    ended = entries[-1][1][0] != RECORD
    if ended:
        entries = entries[:-1]
        if not entries:
            return [], cursor, True
    bodies = _loads((b"[" + b",".join([e[1][1] for e in entries]) + b"]"
                     ).decode("utf-8", "surrogatepass"))
    first, last = seq_of(entries[0][0]), seq_of(entries[-1][0])
    if last - first == len(entries) - 1:  # contiguous, as a run's seqs are
        seqs: Iterable[int] = range(first, last + 1)
    else:
        seqs = [seq_of(e[0]) for e in entries]
    batch: list[EventRecord] = [(seq, b[0], b[1], b[2], b[3])
                                for seq, b in zip(seqs, bodies, strict=True)]
    # As in every event log, a batch that ends with a terminal record ends the run.
    return batch, cursor, ended or batch[-1][2] in TERMINAL_EVENT_TYPES


def parse_published(payload: bytes) -> list[EventRecord]:
    """The records of a batch ``APPEND`` published: ``b"{first_seq}\n"`` then the values
    joined with newlines (compact JSON never holds a raw newline), seqs contiguous. One
    ``json.loads`` for the batch, as in :func:`parse_entries`."""
    head, _, data = payload.partition(b"\n")
    first = int(head)
    bodies = _loads((b"[" + data.replace(b"\n", b",") + b"]").decode("utf-8", "surrogatepass"))
    return [(seq, b[0], b[1], b[2], b[3]) for seq, b in enumerate(bodies, first)]
