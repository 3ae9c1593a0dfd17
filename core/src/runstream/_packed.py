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
from collections.abc import Collection, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._events import EventRecord

__all__: list[str] = []

_ATOMS: Final = frozenset({str, int, float, bool, type(None)})
_PLAIN: Final = _ATOMS | {dict, list, tuple}
_DICT: Final = frozenset({dict})


def _plain(values: Collection[Any]) -> bool:
    """Whether every value in ``values`` (a list, a tuple or a dict's values) is plain.

    The types are gathered with ``map(type, ...)`` (in C): a flat container costs one call."""
    kinds = set(map(type, values))
    if kinds <= _ATOMS:
        return True
    if not kinds <= _PLAIN:
        return False
    for value in values:
        kind = type(value)
        if kind is dict:
            if not (_ATOMS.issuperset(map(type, value)) and _plain(value.values())):
                return False
        elif (kind is list or kind is tuple) and not _plain(value):
            return False
    return True


def pack(records: Sequence[EventRecord], sizes: Sequence[int]) -> bytes | None:
    """``records`` and their ``sizes`` as one ``bytes`` (:func:`unpack` gives them back, equal
    and of the same types), or None if any record holds data that is not plain (see the
    module)."""
    try:
        # A record is (seq, time, type, step, data). runstream makes the first four (an int, a
        # float, a str and a str or None; marshal refuses a subclass of those, it does not
        # change it); the event's dict is checked with its keys and values gathered in C.
        datas = [record[4] for record in records]
        if not (set(map(type, datas)) == _DICT
                and _ATOMS.issuperset(map(type, chain.from_iterable(datas)))
                and _plain(list(chain.from_iterable(map(dict.values, datas))))):
            return None
        return marshal.dumps((tuple(records), tuple(sizes)))
    except (ValueError, RecursionError):  # data that holds itself; deeper than marshal goes
        return None


def unpack(packed: bytes) -> tuple[tuple[EventRecord, ...], tuple[int, ...]]:
    """The records and sizes :func:`pack` packed."""
    unpacked: tuple[tuple[EventRecord, ...], tuple[int, ...]] = marshal.loads(packed)
    return unpacked
