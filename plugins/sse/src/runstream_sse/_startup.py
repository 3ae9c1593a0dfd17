"""``StartupErrors``: a start-up that fails with a runstream error is one clear line, not a
traceback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from runstream import RunstreamError

__all__ = ["StartupErrors"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class StartupErrors:
    """ASGI middleware for the app's lifespan: when the start-up fails with a
    :class:`runstream.RunstreamError` (an event log or run log store that cannot be reached, a
    bad config), the server is told only the error's message, which names what failed (the URL
    or DSN, its password masked), instead of the traceback Starlette sends. The server still
    refuses to start (uvicorn: ``Application startup failed. Exiting.``). Any other error, and
    every request, passes through untouched.

    >>> app = FastAPI(lifespan=sse.lifespan)
    >>> app.add_middleware(StartupErrors)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold_failure(message: Message) -> None:
            # Starlette reports a failed start-up with the formatted traceback, then raises
            # the error itself: hold the report until the error shows which it was.
            if message["type"] == "lifespan.startup.failed":
                held.append(message)
                return
            await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except RunstreamError as exc:
            if not held:
                raise
            await send({"type": "lifespan.startup.failed",
                        "message": f"{type(exc).__name__}: {exc}"})
            return
        except BaseException:
            for message in held:
                await send(message)
            raise
        for message in held:
            await send(message)
