"""Server-Sent Events framing, by the WHATWG rules.

Source: https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream

- A stream is UTF-8; lines end with CRLF, a lone CR or a lone LF, and nothing else (not
  U+2028, U+0085, VT or FF, which ``str.splitlines`` would also split on).
- A line ``name: value`` sets a field; the parser strips exactly one space after the colon. A
  line that starts with ``:`` is a comment. A blank line dispatches the event.
- ``data`` may repeat: the parser joins the values with LF. So a value is framed as one
  ``data:`` line per line of it, and a CR or LF inside it can never start another field or end
  the event (no field injection). CR and CRLF come back as LF: the protocol cannot carry them.
- An ``id`` holding NUL is ignored by parsers, and no field may hold CR or LF: those are
  rejected here rather than sent broken.
- A parser does not dispatch an event whose data is empty.

Events of a run are JSON, whose text never holds a raw CR or LF (``json`` escapes control
characters), so :func:`json_frame` writes its one ``data:`` line without scanning. Their JSON
also escapes U+0085, U+2028 and U+2029 (as ``\\u0085``...), the line breaks that ``json`` writes
raw but that line readers built on ``str.splitlines`` split on (httpx's ``iter_lines()``,
requests' ``iter_lines(decode_unicode=True)``): a JSON frame is then one line for every reader.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time
from typing import Any, Final

from pydantic import BaseModel

#: A comment line plus the blank line: keeps an idle connection (and proxies) alive.
PING: Final = b": ping\n\n"


def _check_field(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError(f"an SSE {name} cannot hold CR or LF: {value!r}")


def encode_event(data: str, *, event: str | None = None, id: str | None = None,
                 retry: int | None = None) -> str:
    """Frame one event. ``data`` may hold any text (line breaks become several ``data:``
    lines); ``event`` and ``id`` may not hold CR or LF, nor ``id`` NUL (ValueError)."""
    parts: list[str] = []
    if event is not None:
        _check_field("event name", event)
        parts.append(f"event: {event}\n")
    if id is not None:
        _check_field("id", id)
        if "\0" in id:
            raise ValueError(f"an SSE id cannot hold NUL (parsers ignore it): {id!r}")
        parts.append(f"id: {id}\n")
    if retry is not None:
        if retry < 0:
            raise ValueError(f"retry must be a non-negative number of milliseconds, got {retry}")
        parts.append(f"retry: {retry}\n")
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    for line in data.split("\n"):
        parts.append(f"data: {line}\n")
    parts.append("\n")
    return "".join(parts)


def encode_comment(text: str = "") -> str:
    """Frame a comment (ignored by clients); each line of ``text`` becomes a ``:`` line."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(f": {line}\n" if line else ":\n" for line in text.split("\n")) + "\n"


def _fallback(value: object) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value)


def _finite(value: Any, path: set[int]) -> Any:
    """``value`` with every NaN and infinity (which JSON cannot hold) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dict, list, tuple)):
        if id(value) in path:  # a cycle: leave it for the encoder to report
            return value
        path.add(id(value))
        try:
            if isinstance(value, dict):
                return {(k if not isinstance(k, float) or math.isfinite(k) else str(k)):
                        _finite(v, path) for k, v in value.items()}
            return [_finite(v, path) for v in value]
        finally:
            path.discard(id(value))
    return value


# Default separators (", " and ": ") so that the wire reads like the dicts in Python;
# ensure_ascii=False keeps non-ASCII text readable (lone surrogates are handled at encode time,
# see ``to_bytes``). allow_nan=False: Python would write NaN and Infinity, which are not JSON
# (JSON.parse rejects them); the rare event that holds them is encoded again through
# ``_finite``, so the common case pays nothing. Stateless, so one shared instance is safe.
_JSON = json.JSONEncoder(ensure_ascii=False, default=_fallback, allow_nan=False)
_FINITE_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False,
                                default=lambda value: _finite(_fallback(value), set()))


#: Line breaks for ``str.splitlines`` (not for SSE) that JSON text may hold raw: inside a string
#: literal, the only place they can be, their ``\\uXXXX`` escapes stand for the same characters.
#: (VT, FF and U+001C..U+001E, which splitlines also splits on, are control characters that
#: ``json`` always escapes.)
_SPLITLINES_ESCAPES: Final = str.maketrans(
    {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _fast_encoder() -> Any:
    """``_JSON.encode`` without its per-call cost: ``JSONEncoder.encode`` builds a C encoder
    and a dict of the containers it is inside (to report a cycle) for every call, most of what
    a small event costs (~2 us of ~2.7). This one is built once, with the same arguments, and
    without the cycle check: a cycle raises RecursionError (the C encoder's recursion guard),
    and :func:`json_dumps` then encodes again with ``_JSON``, which reports it. None without
    the C accelerator."""
    try:
        from json.encoder import (  # type: ignore[attr-defined]
            c_make_encoder,
            encode_basestring,
        )
    except ImportError:  # pragma: no cover - an interpreter without the C accelerator
        return None
    if c_make_encoder is None:  # pragma: no cover
        return None
    return c_make_encoder(None, _fallback, encode_basestring, None, ": ", ", ", False, False,
                          False)


_FAST: Final = _fast_encoder()


def json_dumps(data: Any) -> str:
    """JSON text of an event's data: values JSON cannot hold are written as ``str(value)``
    (pydantic models as their JSON dump, dates in ISO format), and NaN and infinities as
    ``null``: the text is always valid JSON, and holds no character that any line reader
    splits on (U+0085, U+2028 and U+2029 are escaped; ``json`` escapes CR, LF and the other
    control characters)."""
    try:
        if _FAST is None:  # pragma: no cover
            raise RecursionError
        text = "".join(_FAST(data, 0))
    except (ValueError, RecursionError):  # NaN, an infinity, a cycle, or very deep data
        try:
            text = _JSON.encode(data)
        except ValueError:  # NaN or an infinity somewhere (or a cycle, which raises again)
            text = _FINITE_JSON.encode(_finite(data, set()))
    # Three scans in C, and none for U+2028/U+2029 in Latin-1 text (a str too narrow to hold
    # them answers at once): the common chunk pays ~0.1 us; translate only when one is there.
    if "\u2028" in text or "\u2029" in text or "\x85" in text:
        return text.translate(_SPLITLINES_ESCAPES)
    return text


def json_frame(data: Any, *, id: int, event: str | None = None) -> str:
    """Frame ``data`` as JSON on one ``data:`` line, with an integer ``id``.

    ``event`` comes from runstream's own event types (never CR or LF).
    """
    if event is None:
        return f"id: {id}\ndata: {json_dumps(data)}\n\n"
    return f"event: {event}\nid: {id}\ndata: {json_dumps(data)}\n\n"


def to_bytes(text: str) -> bytes:
    """UTF-8 bytes of framed text.

    A Python string may hold lone surrogates, which UTF-8 cannot; in JSON text they can only sit
    inside a string literal, where ``\\udXXX`` (what ``backslashreplace`` writes) is the JSON
    escape of the same code unit.
    """
    return text.encode("utf-8", "backslashreplace")
