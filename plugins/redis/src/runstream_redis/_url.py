"""A Redis URL as it may be shown: in messages, logs and ``describe()``, never its password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["mask_url", "scrub"]

SCHEMES = ("redis", "rediss", "unix")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``redis://:***@host:6379/0``)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # e.g. a port that is not a number: show nothing of the credentials
        return url.rsplit("@", 1)[-1] if "@" in url else url
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the password of ``url`` replaced by ``***``."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    if password:
        text = text.replace(password, "***")
    return text.replace(url, mask_url(url))
