"""DSNs as they may appear in messages and logs: with the password masked, wherever it was."""

from __future__ import annotations

import re
from urllib.parse import unquote

import psycopg.conninfo

MASK = "***"

#: ``password=...`` in a key/value DSN or a URI's query string (quoted or not).
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***``: ``postgresql://user:***@host:5432/db``."""
    scheme, sep, rest = dsn.partition("://")
    if sep:
        netloc, slash, tail = _split_netloc(rest)
        userinfo, at, hosts = netloc.rpartition("@")
        if at:
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{hosts}" if colon else f"{userinfo}@{hosts}"
        masked = f"{scheme}://{netloc}{slash}{tail}"
    else:
        masked = dsn
    return _KV_PASSWORD.sub(lambda m: m.group(1) + MASK, masked)


def _split_netloc(rest: str) -> tuple[str, str, str]:
    # The authority ends at the first '/', '?' or '#', as in RFC 3986.
    match = re.search(r"[/?#]", rest)
    if match is None:
        return rest, "", ""
    i = match.start()
    return rest[:i], rest[i], rest[i + 1:]


def passwords(dsn: str) -> list[str]:
    """The texts under which the DSN's password could appear in a message (as written in the
    DSN and decoded), longest first."""
    found: set[str] = set()
    try:
        value = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        value = None
    if isinstance(value, str) and value:
        found.add(value)
    _, sep, rest = dsn.partition("://")
    if sep:
        userinfo, at, _ = _split_netloc(rest)[0].rpartition("@")
        _, colon, raw = userinfo.partition(":")
        if at and colon and raw:
            found.update({raw, unquote(raw)})
    for match in _KV_PASSWORD.finditer(dsn):
        raw = match.group(2).strip("'")
        if raw:
            found.add(raw)
    return sorted(found, key=len, reverse=True)


def redact(text: str, dsn: str) -> str:
    """``text`` (a driver's error message) with the DSN's password masked wherever it occurs."""
    for secret in passwords(dsn):
        if len(secret) >= 3:  # "a" in a password must not turn every message into stars
            text = text.replace(secret, MASK)
    return text
