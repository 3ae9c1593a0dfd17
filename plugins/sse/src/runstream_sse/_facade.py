"""``SSE``: one object per app that holds the runtime its streams and router share."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter
from runstream import AsyncPipeline, Config, Pipeline, Runtime

from ._binding import resolve_runtime
from ._inflight import RunsInFlight
from ._owners import ANONYMOUS, Authorize
from ._proto_complete import CompletionResponse, completion_response
from ._response import SSEResponse, check_send_timeout
from ._router import runs_router
from ._signals import on_exit_signal
from ._stream import OnDisconnect, sse_response

__all__ = ["SSE"]


class SSE:
    """Server-Sent Events for one app: ``.response(...)`` streams runs, ``.router()`` serves
    their status, replay and cancellation, both with the same runtime (and so the same event
    log); ``.lifespan`` starts the runtime (connects its event log) and ends every stream
    cleanly when the server stops.

    ``config`` is resolved once (a :class:`runstream.Config` becomes one Runtime, not one per
    request). ``ping_interval`` and
    ``send_timeout`` are the defaults for every stream (see :func:`sse_response`).
    ``shutdown_grace_period`` bounds :meth:`shutdown`. ``authorize`` is the runs router's
    (see :func:`runs_router`): pass each run's ``owner`` to :meth:`response` and the router
    serves a run only to the caller whose identity is its owner.

    >>> sse = SSE(runtime)
    >>> app = FastAPI(lifespan=sse.lifespan)
    >>> app.include_router(sse.router())
    >>> @app.post("/chat")
    ... async def chat(body: Body) -> Response:
    ...     return sse.response(pipeline, {"prompt": body.prompt})
    """

    def __init__(self, config: Runtime | Config | str | os.PathLike[str] | None = None, *,
                 ping_interval: float | None = 15.0,
                 send_timeout: float | None = 30.0, shutdown_grace_period: float = 5.0,
                 authorize: Authorize | None = None) -> None:
        check_send_timeout(send_timeout)
        if not 0 <= shutdown_grace_period < float("inf"):
            raise ValueError(f"shutdown_grace_period must be a number of seconds >= 0, "
                             f"got {shutdown_grace_period}")
        #: Built here (and closed at the end of :meth:`lifespan`) unless a Runtime was given.
        self.runtime = resolve_runtime(config)
        self._owns_runtime = self.runtime is not config
        self.ping_interval = ping_interval
        self.send_timeout = send_timeout
        self.shutdown_grace_period = shutdown_grace_period
        self.authorize = authorize
        self._shutdown: asyncio.Task[None] | None = None

    @property
    def runs(self) -> RunsInFlight:
        """The runs in flight for this object's runtime (``runtime.state.sse_runs``)."""
        return RunsInFlight.for_runtime(self.runtime)

    def response(self, pipeline: AsyncPipeline | Pipeline,
                 parameters: Mapping[str, Any] | None = None, *, run_id: str | None = None,
                 on_disconnect: OnDisconnect = "cancel", lifecycle: bool = False,
                 owner: str | None = ANONYMOUS, protocol: str = "runstream",
                 options: Mapping[str, Any] | None = None) -> SSEResponse:
        """:func:`sse_response` with this object's runtime, ping interval and send timeout.
        ``owner``: the caller identity the run belongs to; ``protocol`` and ``options``: the
        protocol the client speaks and its adapter's options (see :func:`sse_response`)."""
        return sse_response(pipeline, parameters, config=self.runtime, run_id=run_id,
                            on_disconnect=on_disconnect, lifecycle=lifecycle,
                            ping_interval=self.ping_interval, send_timeout=self.send_timeout,
                            owner=owner, protocol=protocol, options=options)

    def completion(self, pipeline: AsyncPipeline | Pipeline,
                   parameters: Mapping[str, Any] | None = None, *, run_id: str | None = None,
                   on_disconnect: OnDisconnect = "cancel", owner: str | None = ANONYMOUS,
                   options: Mapping[str, Any] | None = None) -> CompletionResponse:
        """:func:`completion_response` (OpenAI ``stream: false``) with this object's runtime
        and send timeout."""
        return completion_response(pipeline, parameters, config=self.runtime, run_id=run_id,
                                   on_disconnect=on_disconnect, send_timeout=self.send_timeout,
                                   owner=owner, options=options)

    def router(self, *, prefix: str = "/runs") -> APIRouter:
        """:func:`runs_router` with this object's runtime."""
        return runs_router(self.runtime, prefix=prefix,
                           ping_interval=self.ping_interval, send_timeout=self.send_timeout,
                           authorize=self.authorize)

    async def shutdown(self, reason: str = "shutdown") -> None:
        """Refuse new runs (``503``), cancel every run in flight with ``reason`` (their clients
        get ``run.cancelled``) and wait up to ``shutdown_grace_period`` for the streams to
        end. Calling it again waits for the first call."""
        await asyncio.shield(self._begin_shutdown(reason))

    def _begin_shutdown(self, reason: str = "shutdown") -> asyncio.Task[None]:
        if self._shutdown is None:
            self._shutdown = asyncio.get_running_loop().create_task(
                self.runs.shutdown(reason, self.shutdown_grace_period),
                name="runstream-sse-shutdown")
        return self._shutdown

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """The app's lifespan (``FastAPI(lifespan=sse.lifespan)``, or ``async with
        sse.lifespan(app):`` inside your own): when the server is asked to stop (SIGTERM,
        Ctrl+C), :meth:`shutdown` runs at once, so that the open streams end and the server
        can stop; at the lifespan's end it runs in any case.

        The signal is heard only where the server handles it in the main thread (uvicorn,
        ``uvicorn.run``); elsewhere call :meth:`shutdown` yourself before the server waits
        for open connections. A lifespan that starts again after a shutdown accepts runs
        again.
        """
        # A server (or test client) may run the lifespan again after a shutdown: start afresh.
        if self._shutdown is not None and self._shutdown.done():
            self._shutdown = None
            self.runs.reopen()
        await self.runtime.start()  # an unreachable event log fails the start, clearly
        restore = on_exit_signal(self._begin_shutdown)
        try:
            yield
        finally:
            restore()
            await self.shutdown()
            if self._owns_runtime:
                await self.runtime.aclose()
