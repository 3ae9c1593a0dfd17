"""Anonymous sessions: a random cookie scopes each browser's runs to that browser.

No login: the first visit (``GET /ui``) or the first chat gets a cookie holding 256 random bits.
Each run started with it is owned by the session (``owner=session.owner``), and the runs router
serves a run only to a request that carries the same cookie (``authorize=session_owner``):
another browser, or curl without the cookie, gets 404 for it. ``EventSource`` sends the cookie
too (same origin), so ``new EventSource("/runs/ID/events")`` replays your own runs.

The owner recorded in the run log is a hash of the cookie, never the cookie itself: whoever can
read the run log store cannot take over a session.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Annotated, Final

from fastapi import Depends, Request
from starlette.responses import Response

#: The cookie's name.
COOKIE: Final = "runstream_session"

#: ``secrets.token_urlsafe(32)``: 256 random bits in 43 characters.
_TOKEN: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")


def owner_of(token: str) -> str:
    """The run owner for a session token (a hash of it, safe to store)."""
    return "session:" + hashlib.sha256(token.encode()).hexdigest()[:32]


async def session_owner(request: Request) -> str | None:
    """The runs router's ``authorize`` dependency: the owner of the caller's session, or None
    (then it is served no run) when it sends no valid session cookie."""
    # async def, though it awaits nothing: FastAPI runs a plain def dependency in its thread
    # pool, a thread hop per request for a few microseconds of work.
    token = request.cookies.get(COOKIE)
    if token is None or not _TOKEN.match(token):
        return None
    return owner_of(token)


class Session:
    """The caller's session; ``new`` until its cookie has been set on a response."""

    __slots__ = ("new", "secure", "token")

    def __init__(self, token: str, *, new: bool, secure: bool) -> None:
        self.token = token
        self.new = new
        self.secure = secure

    @property
    def owner(self) -> str:
        return owner_of(self.token)

    def set_cookie(self, response: Response) -> Response:
        """Give a new session's cookie to the client with ``response`` (HttpOnly: scripts
        cannot read it; SameSite=Lax: other sites cannot POST with it; Secure over HTTPS)."""
        if self.new:
            # What Response.set_cookie writes, without http.cookies' quoting machinery per
            # chat: the token is 43 URL-safe characters, which need no quoting.
            response.raw_headers.append((b"set-cookie", (
                f"{COOKIE}={self.token}; HttpOnly; Path=/; SameSite=lax"
                + ("; Secure" if self.secure else "")).encode("ascii")))
        return response


async def open_session(request: Request) -> Session:
    """A FastAPI dependency: the caller's session, or a new one if it has none (its cookie
    must then be set on the response, :meth:`Session.set_cookie`). ``async def`` for the same
    reason as :func:`session_owner`."""
    # Behind a TLS-terminating proxy, run uvicorn with --proxy-headers so that this is https.
    secure = request.scope.get("scheme") == "https"  # request.url would build a URL
    token = request.cookies.get(COOKIE)
    if token is not None and _TOKEN.match(token):
        return Session(token, new=False, secure=secure)
    return Session(secrets.token_urlsafe(32), new=True, secure=secure)


#: The caller's session as an endpoint parameter: ``session: CurrentSession``.
CurrentSession = Annotated[Session, Depends(open_session)]
