"""``SSE``: one object per app that holds the runtime and the replay buffer."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from runstream import AsyncPipeline, Config, Pipeline, Runtime

from ._replay import ReplayBuffer, replay_for
from ._response import SSEResponse
from ._router import runs_router
from ._runtime import resolve_runtime
from ._stream import OnDisconnect, sse_response

__all__ = ["SSE"]


class SSE:
    """Server-Sent Events for one app: ``.response(...)`` streams runs, ``.router()`` serves
    their status and replay, both with the same runtime and :class:`ReplayBuffer`.

    ``config`` is resolved once (a :class:`runstream.Config` becomes one Runtime, not one per
    request). ``replay`` defaults to the runtime's replay buffer. ``ping_interval`` is the
    default for every stream.

    >>> sse = SSE(runtime)
    >>> app.include_router(sse.router())
    >>> @app.post("/chat")
    ... async def chat(body: Body) -> Response:
    ...     return sse.response(pipeline, {"prompt": body.prompt})
    """

    def __init__(self, config: Runtime | Config | str | os.PathLike[str] | None = None, *,
                 replay: ReplayBuffer | None = None, ping_interval: float | None = 15.0
                 ) -> None:
        self.runtime = resolve_runtime(config)
        self.replay = replay_for(self.runtime, replay)
        self.ping_interval = ping_interval

    def response(self, pipeline: AsyncPipeline | Pipeline,
                 parameters: Mapping[str, Any] | None = None, *, run_id: str | None = None,
                 on_disconnect: OnDisconnect = "cancel", lifecycle: bool = False
                 ) -> SSEResponse:
        """:func:`sse_response` with this object's runtime, replay buffer and ping interval."""
        return sse_response(pipeline, parameters, config=self.runtime, run_id=run_id,
                            on_disconnect=on_disconnect, lifecycle=lifecycle,
                            ping_interval=self.ping_interval, replay=self.replay)

    def router(self, *, prefix: str = "/runs") -> APIRouter:
        """:func:`runs_router` with this object's runtime and replay buffer."""
        return runs_router(self.runtime, replay=self.replay, prefix=prefix,
                           ping_interval=self.ping_interval)
