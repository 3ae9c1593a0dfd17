"""The size of an event as JSON, cheaply: for ``limits.max_event_bytes`` and the run channel.

Serialising every event to measure it cost as much as the rest of runstream's work per event.
:func:`estimate` walks the dict instead: it looks at lengths and types, never at characters,
and costs about as much as a dict copy. It is within a factor of the truth:

    estimate(data) <= ~json_size(data) <= FACTOR * estimate(data)

where ``json_size`` is the length in UTF-8 bytes of ``json.dumps(data, ensure_ascii=False)``
with the default separators (what the SSE encoder writes). The right-hand side is what keeps
the limit safe: an event whose estimate is below ``limit / FACTOR`` cannot be over the limit,
so only events near it (or over it) are serialised, by :func:`json_size`. The bound per value:

- ``str``: ``len + 2`` quotes. A character is at most 4 bytes of UTF-8 (3 in the BMP, 4 for one
  astral code point, which Python counts as 1), and an escaped one 6 (``\\u001f``; a lone
  surrogate, written ``\\udXXX``), so its JSON is at most ``6 * len + 2``.
- ``int``: 3 below 2**63 (at most 20 characters), else ``bit_length / 4`` (it has at least
  that many digits, and at most ``0.302 * bit_length + 2`` characters with a sign).
- ``float``: 3 (``0.0``), at most 24 characters (``-2.2250738585072014e-308``).
- ``True``, ``False``, ``None``: exact. ``bytes`` (written as ``str(b)``): ``len + 5``; each
  byte is at most ``\\\\xNN``, 5 characters.
- containers: their items plus one separator byte each, and 2 for the brackets (JSON writes 2
  per separator and 2 more per key for ``": "``).

Anything else (a subclass, a pydantic model, a date, a set: JSON writes what ``default=``
makes of it), keys that are not strings and containers nested past :data:`MAX_DEPTH` (or
cycles) raise :class:`Unmeasured` or TypeError: the caller measures those exactly.

Small values are over-counted by a byte or two (``0`` counts 3), which the separators that the
estimate counts once and JSON twice make up for: the estimate is near the JSON size from below.
"""

from __future__ import annotations

import json
from typing import Any, Final

#: The JSON of a value is at most this many times its estimate (8 > 6, the worst per character,
#: leaves room for the separators a container writes but the estimate counts once).
FACTOR: Final = 8

#: Deeper containers are measured exactly (a cycle gets there too, and json reports it).
MAX_DEPTH: Final = 32


#: ``len`` of a key that must be a str: TypeError for any other (a tuple has a ``len`` too,
#: but JSON cannot hold it as a key), so that it is measured, or refused, exactly.
_str_len = str.__len__


class Unmeasured(Exception):
    """Internal: the estimate cannot bound this value; measure it exactly."""


def estimate(data: dict[str, Any]) -> int:
    """A cheap estimate of the JSON size of ``data`` in bytes (see the module docstring).

    The flat dict of strings and small ints that a token stream emits is the hot path: one
    loop, no call per value (``Run.publish_step_event`` has a copy of this loop). Raises
    :class:`Unmeasured` (or TypeError, for a key that is not a string) when it cannot bound
    ``data``.
    """
    n = 2
    for key, value in data.items():
        cls = type(value)
        if cls is str:
            n += _str_len(key) + len(value) + 7
        elif cls is int and -0x7FFFFFFFFFFFFFFF <= value <= 0x7FFFFFFFFFFFFFFF:
            n += _str_len(key) + 8  # at most 20 characters: 3 is within the factor
        else:
            n += _str_len(key) + 5 + estimate_value(value, 1)
    return n


def estimate_value(value: Any, depth: int) -> int:
    """The estimate of one value inside an event, ``depth`` containers down."""
    cls = type(value)
    if cls is str:
        return len(value) + 2
    if cls is int:
        if -0x7FFFFFFFFFFFFFFF <= value <= 0x7FFFFFFFFFFFFFFF:
            return 3
        bits: int = value.bit_length()
        return bits >> 2
    if cls is float:
        return 3
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    if depth >= MAX_DEPTH:
        raise Unmeasured
    if cls is dict:
        n = 2
        for key, item in value.items():
            n += _str_len(key) + 4 + estimate_value(item, depth + 1)
        return n
    if cls is list or cls is tuple:
        n = 2
        for item in value:
            n += estimate_value(item, depth + 1) + 1
        return n
    if cls is bytes:
        return len(value) + 5
    raise Unmeasured


def json_size(data: Any) -> int:
    """The exact size of ``data`` as JSON text in UTF-8 bytes, as the SSE encoder writes it
    (values JSON cannot hold as their ``str``, lone surrogates as their ``\\udXXX`` escape)."""
    text = json.dumps(data, ensure_ascii=False, default=str)
    return len(text) if text.isascii() else len(text.encode("utf-8", "backslashreplace"))
