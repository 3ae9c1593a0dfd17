"""Who may read a run over HTTP: the run's owner against the caller's identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

__all__ = ["ANONYMOUS", "Authorize"]

#: The owner of a run that :func:`sse_response` starts without an ``owner``. A runs router
#: without ``authorize`` serves these runs, and only these, to anyone who has their id.
ANONYMOUS: Final = "anonymous"

#: A FastAPI dependency that returns the caller's identity (``str``), or ``None`` for a caller
#: who has none (then no run is served to it). E.g. ``def who(request: Request) -> str | None``.
#: It may take any parameters FastAPI can inject (``Request``, ``Cookie``, ``Header``,
#: ``Depends``), be sync or async, and raise ``HTTPException`` (e.g. 401) itself.
Authorize = Callable[..., Any]


class _NoAuthorize:
    """The caller of a router without ``authorize``: it can tell nobody apart."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no authorize>"


NO_AUTHORIZE: Final = _NoAuthorize()


def no_authorize() -> _NoAuthorize:
    """The dependency of a router without ``authorize``."""
    return NO_AUTHORIZE


def check_owner(owner: object) -> str | None:
    """``owner`` if it is None or a non-empty string, else ValueError."""
    if owner is not None and (not isinstance(owner, str) or not owner):
        raise ValueError(f"owner must be a non-empty string or None, got {owner!r}")
    return owner


def may_read(owner: str | None, caller: object) -> bool:
    """Whether ``caller`` (what ``authorize`` returned, or :data:`NO_AUTHORIZE`) may read a run
    of ``owner``.

    Without ``authorize``: anonymous runs only. With it: the runs whose owner is the caller's
    identity; a caller without one (None) reads nothing, and a run without an owner (the CLI, a
    batch job) is nobody's to read.
    """
    if caller is NO_AUTHORIZE:
        return owner == ANONYMOUS
    if caller is None:
        return False
    if not isinstance(caller, str):
        raise TypeError(f"the runs router's authorize dependency must return the caller's "
                        f"identity as a str, or None; it returned a {type(caller).__name__}")
    return owner is not None and owner == caller
