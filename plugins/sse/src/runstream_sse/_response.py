"""``SSEResponse``: the ASGI response that streams one run's events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ._serve import Outcome, stream_feed
from ._wire import STREAM_HEADERS, parse_event_id
from ._writer import Framer

if TYPE_CHECKING:
    from ._feed import Feed
    from ._inflight import RunsInFlight
    from ._live import LiveRun

#: ``Retry-After`` of a ``503`` (too many runs in flight, or shutting down), in seconds.
RETRY_AFTER: Final = 1

__all__ = ["SSEResponse"]


class SSEResponse(Response):
    """A ``text/event-stream`` response that follows one run (see docs/sse.md).

    Made by :func:`sse_response` (which starts the run when the response is sent) and by the
    runs router (which replays a run); not meant to be built directly. ``run_id`` is the run it
    streams, also sent as the ``X-Run-Id`` header. A ``HEAD`` request gets the headers only.
    """

    media_type = "text/event-stream"

    def __init__(self, run_id: str, *, lifecycle: bool = False,
                 ping_interval: float | None = 15.0, send_timeout: float | None = 30.0,
                 runs: RunsInFlight | None = None) -> None:
        if ping_interval is not None and not ping_interval > 0:
            raise ValueError(f"ping_interval must be a number of seconds > 0 or None, "
                             f"got {ping_interval}")
        check_send_timeout(send_timeout)
        self.run_id = run_id
        self.lifecycle = lifecycle
        self.ping_interval = ping_interval
        self.send_timeout = send_timeout
        self.runs = runs
        #: Frames the records in another protocol than runstream's (None: runstream's).
        self.framer: Framer | None = None
        self.status_code = 200
        self.background: BackgroundTask | None = None
        self.init_headers({**STREAM_HEADERS, "X-Run-Id": run_id})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") == "HEAD":
            headers = [(k, v) for k, v in self.raw_headers if k != b"x-run-id"]
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await self._respond(scope, receive, send)
        if self.background is not None:
            await self.background()

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError

    async def _start(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})

    async def _follow(self, receive: Receive, send: Send, feed: Feed, cursor: int,
                      primary: LiveRun | None = None) -> Outcome:
        """Stream ``feed`` after ``cursor``; the client counts as a reader of the run
        meanwhile (see :meth:`runstream.EventLog.readers`)."""
        runs = self.runs
        if runs is None:
            return await stream_feed(receive, send, feed, cursor, lifecycle=self.lifecycle,
                                     ping_interval=self.ping_interval, primary=primary,
                                     send_timeout=self.send_timeout, framer=self.framer)
        await runs.add_reader(feed.run_id)
        try:
            return await stream_feed(receive, send, feed, cursor, lifecycle=self.lifecycle,
                                     ping_interval=self.ping_interval, primary=primary,
                                     send_timeout=self.send_timeout, runs=runs,
                                     framer=self.framer)
        finally:
            await runs.remove_reader(feed.run_id)


def check_send_timeout(send_timeout: float | None) -> None:
    if send_timeout is not None and not 0 < send_timeout < float("inf"):
        raise ValueError(f"send_timeout must be a number of seconds > 0 or None, "
                         f"got {send_timeout}")


def last_event_id(scope: Scope) -> int | None:
    """The request's ``Last-Event-ID`` (None if absent or empty); ValueError if malformed."""
    value = Headers(scope=scope).get("last-event-id")
    if not value:
        return None
    return parse_event_id(value, "Last-Event-ID")


async def reject(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    """A small JSON error response, shaped like FastAPI's (``{"detail": ...}``)."""
    await JSONResponse({"detail": message}, status_code=status)(scope, receive, send)


async def unavailable(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    """``503`` with ``Retry-After``: no run was started, try again in a moment."""
    await JSONResponse({"detail": message}, status_code=503,
                       headers={"Retry-After": str(RETRY_AFTER)})(scope, receive, send)


class ReplayResponse(SSEResponse):
    """Follows a run's records from ``cursor`` on, without starting anything; with a
    ``framer`` (another protocol, which skips the frames up to ``cursor`` itself), from the
    run's first record."""

    def __init__(self, runs: RunsInFlight, run_id: str, cursor: int, *,
                 lifecycle: bool = False, ping_interval: float | None = 15.0,
                 send_timeout: float | None = 30.0, framer: Framer | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(run_id, lifecycle=lifecycle, ping_interval=ping_interval,
                         send_timeout=send_timeout, runs=runs)
        self.framer = framer
        self.cursor = 0 if framer is not None else cursor
        for name, value in (headers or {}).items():
            self.headers[name] = value

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.runs is not None
        feed = self.runs.feed(self.run_id, self.cursor)
        await self._start(send)
        await self._follow(receive, send, feed, self.cursor)
