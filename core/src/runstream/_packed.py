"""The records of a run that has ended, packed: the ``memory`` event log keeps runs for replay
after their end (``ttl``, ``max_runs``), and a kept run's records as Python tuples and dicts
cost about 370 bytes each (10 kB for a chat of 27 records) and stay tracked by the cyclic
garbage collector, which scans them at every full collection. Packed, they are one ``bytes``
of about 55 bytes a record, which the collector never looks at; a replay unpacks them (once:
the log packs them again later).

``marshal`` does the packing: C, about 6 us for a chat, and exact for the types it takes.
Only records whose data is plain (``str``, ``int``, ``float``, ``bool``, ``None``, and dicts,
lists and tuples of them, exactly those types) are packed, so that a replay gets the same
values as the live stream did: ``marshal`` would turn a ``bytearray`` or any buffer (an array)
into ``bytes``, and refuses subclasses (an enum member). A run with anything else stays as it
is.
"""

from __future__ import annotations

import marshal
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._events import EventRecord

__all__: list[str] = []

_ATOMS: Final = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind in _ATOMS:
        return True
    if kind is dict:
        return all(type(key) in _ATOMS and (type(item) in _ATOMS or _plain(item))
                   for key, item in value.items())
    if kind is list or kind is tuple:
        return all(type(item) in _ATOMS or _plain(item) for item in value)
    return False


def pack(records: Sequence[EventRecord], sizes: Sequence[int]) -> bytes | None:
    """``records`` and their ``sizes`` as one ``bytes`` (:func:`unpack` gives them back, equal
    and of the same types), or None if any record holds data that is not plain (see the
    module)."""
    for record in records:
        step = record[3]
        if type(record[2]) is not str or (step is not None and type(step) is not str) or (
                not _plain(record[4])):
            return None
    try:
        return marshal.dumps((tuple(records), tuple(sizes)))
    except ValueError:  # pragma: no cover - deeper than marshal goes
        return None


def unpack(packed: bytes) -> tuple[tuple[EventRecord, ...], tuple[int, ...]]:
    """The records and sizes :func:`pack` packed."""
    unpacked: tuple[tuple[EventRecord, ...], tuple[int, ...]] = marshal.loads(packed)
    return unpacked
