"""A request body limit for the example app: 413 for a body over ``max_bytes``, never read whole.

- A ``Content-Length`` over the limit is answered at once, before the app runs and before any
  of the body is read.
- A body without a length (``Transfer-Encoding: chunked``) is counted as the app reads it; the
  read that goes past the limit fails with 413 and nothing more is read.

Either way the response says ``Connection: close``: the rest of the body is not wanted.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large_message(max_bytes: int) -> str:
    return (f"request body too large: the limit is {max_bytes} bytes "
            "(create_app(max_body_bytes=...))")


class BodyTooLarge(HTTPException):
    """Raised by the limited ``receive`` when the body goes past the limit."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, too_large_message(max_bytes), headers={"Connection": "close"})


class BodyLimitMiddleware:
    """Pure ASGI middleware (no buffering of responses: event streams pass straight through)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.max_bytes
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > max_bytes:
            response = JSONResponse({"detail": too_large_message(max_bytes)}, status_code=413,
                                    headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # FastAPI re-raises an HTTPException raised while it reads the body, and
                    # its exception handler answers it: 413 {"detail": ...}.
                    raise BodyTooLarge(max_bytes)
            return message

        await self.app(scope, limited_receive, send)
