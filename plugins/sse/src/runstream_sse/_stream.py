"""``sse_response()``: stream a pipeline run to the client that asked for it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from runstream import (
    AsyncPipeline,
    Config,
    EventLogError,
    Pipeline,
    RunIdError,
    Runtime,
    logged_run_id,
    new_run_id,
)
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._binding import shared_runtime
from ._inflight import RunsInFlight
from ._owners import ANONYMOUS, check_owner
from ._proto_http import check_protocol, framer, run_meta, send_failure, stored_options
from ._response import SSEResponse, check_send_timeout, last_event_id, reject, unavailable
from ._serve import Outcome
from ._wire import check_run_id

__all__ = ["OnDisconnect", "sse_response"]

#: What a client's disconnect does to the run it started.
OnDisconnect = Literal["cancel", "continue"]

R = TypeVar("R", bound="RunResponse")


class RunResponse(SSEResponse):
    """Starts the run when the response is sent, and streams it."""

    def __init__(self, pipeline: AsyncPipeline, parameters: Mapping[str, Any] | None,
                 runtime: Runtime, run_id: str, run_id_given: bool, on_disconnect: OnDisconnect,
                 lifecycle: bool, ping_interval: float | None, send_timeout: float | None,
                 owner: str | None, protocol: str = "runstream",
                 options: Mapping[str, Any] | None = None) -> None:
        inflight = RunsInFlight.for_runtime(runtime)
        super().__init__(run_id, lifecycle=lifecycle, ping_interval=ping_interval,
                         send_timeout=send_timeout, runs=inflight)
        self.inflight = inflight
        self.pipeline = pipeline
        self.parameters = parameters
        self.runtime = runtime
        self.run_id_given = run_id_given
        self.on_disconnect = on_disconnect
        self.owner = owner
        self.protocol = protocol
        self.options = dict(options or {})
        self.framer = framer(protocol, run_id, self.options)
        if self.framer is not None:
            self.headers.update(self.framer.adapter.headers)

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            resume = last_event_id(scope)
        except ValueError as exc:
            await reject(scope, receive, send, 400, str(exc))
            return
        if resume is not None:
            await self._resume(scope, receive, send, resume)
            return
        inflight = self.inflight
        refusal = await inflight.admit(self.run_id)
        if refusal is not None:  # before anything is started: nothing to undo
            await unavailable(scope, receive, send, refusal)
            return
        try:
            writer = await inflight.open_run(self.run_id, self.pipeline.name, self.owner,
                                             run_meta(self.protocol, self.options))
        except RunIdError as exc:  # not this run's id to log into: report it on its own
            await inflight.release_slot(self.run_id)
            await self._start(send)
            await self._send_failure(send, exc)
            return
        try:
            handle = self.pipeline.stream(self.parameters, run_id=logged_run_id(self.run_id),
                                          config=self.runtime, owner=self.owner)
        except Exception as exc:  # e.g. a parameter from the environment is not JSON
            await inflight.fail(writer, exc)
            await self._start(send)
            await self._follow(receive, send, inflight.feed(self.run_id, 0), 0)
            return
        live = inflight.start(handle, writer)
        # This client misses nothing from the run's first record on, also before its stream
        # begins: the run appends from its own task (``LiveRun._take``) as soon as it emits.
        live.hold(0)
        outcome = Outcome.GONE
        try:
            await self._start(send)
            outcome = await self._follow(receive, send, inflight.feed(self.run_id, 0), 0,
                                         primary=live)
        finally:
            live.release()  # (done by the stream already, unless it never began)
            # Also when this task is cancelled (server shutdown): stop the run explicitly.
            if outcome is not Outcome.ENDED and self.on_disconnect == "cancel":
                if outcome is Outcome.STALLED:  # connected but not reading: no resume to wait
                    await inflight.cancel(live, f"send timeout: a write to the client did not "
                                                f"complete within {self.send_timeout} s")
                else:
                    inflight.disconnected(live, "client disconnected")

    async def _send_failure(self, send: Send, error: BaseException) -> None:
        await send_failure(send, self.run_id, self.protocol, self.options, error)

    async def _resume(self, scope: Scope, receive: Receive, send: Send, cursor: int) -> None:
        # A reconnecting EventSource: follow the run it was reading, never start another one.
        # 204 tells an EventSource to stop reconnecting.
        info = None
        if self.run_id_given:
            try:
                info = await self.inflight.find(self.run_id)
            except EventLogError as exc:
                await unavailable(scope, receive, send,
                                  f"the event log is unavailable ({exc}); retry shortly")
                return
        if info is not None and info.owner != self.owner:
            info = None  # another owner's run: as if there were nothing to resume
        if info is None or (info.ended and info.last_seq <= cursor):
            await Response(status_code=204)(scope, receive, send)
            return
        if self.framer is not None:  # the adapter reads the run from its first record
            self.framer = framer(self.protocol, self.run_id,
                                 stored_options(info, self.protocol) or self.options, cursor)
            cursor = 0
        await self._start(send)
        await self._follow(receive, send, self.inflight.feed(self.run_id, cursor), cursor)


def sse_response(
    pipeline: AsyncPipeline | Pipeline,
    parameters: Mapping[str, Any] | None = None,
    *,
    config: Runtime | Config | str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    on_disconnect: OnDisconnect = "cancel",
    lifecycle: bool = False,
    ping_interval: float | None = 15.0,
    send_timeout: float | None = 30.0,
    owner: str | None = ANONYMOUS,
    protocol: str = "runstream",
    options: Mapping[str, Any] | None = None,
) -> SSEResponse:
    """A response that runs ``pipeline`` and streams its events as Server-Sent Events.

    Return it from a FastAPI or Starlette endpoint (GET or POST). The run starts when the
    response is sent (a ``HEAD`` request gets the headers and starts nothing); ``X-Run-Id``
    names it. Each dict a task emits is one unnamed event, ``id: <seq>`` and ``data: <the dict
    as JSON>``; the stream ends with a named ``run.completed``, ``run.failed`` or
    ``run.cancelled`` event. ``lifecycle=True`` adds every other event type as a named event.
    A comment ``: ping`` goes out after ``ping_interval`` idle seconds (None: never).

    - ``config``: passed to ``pipeline.stream(config=...)``: a :class:`runstream.Runtime`
      (best: built once per app), a :class:`runstream.Config`, a config file path, or None.
    - ``run_id``: the run's id (default: a new one).
    - ``owner``: who the run belongs to (``RunLog.owner``), e.g. the user or session id your
      endpoint authenticated. A :func:`runs_router` serves the run's log and events only to a
      caller whose ``authorize`` identity is this owner. The default, :data:`ANONYMOUS`, is
      the one owner that a router *without* ``authorize`` serves (to anyone who has the run
      id); ``None``: no owner, no router serves it. See docs/security.md.
    - ``on_disconnect``: ``"cancel"`` (default) cancels the run when its client goes away:
      at once with ``limits.reconnect_grace`` 0 (the default with the ``memory`` event log),
      else once that grace is over if no client (on any process sharing the event log) has
      resumed it meanwhile; ``"continue"`` lets it finish. Either way its events are in the
      runtime's event log (``event_log:`` in the config) for replay, and
      ``POST /runs/{run_id}/cancel`` stops it at once.
    - ``send_timeout``: seconds one write to the client may take (it waits while the client
      does not read). Past it the response is cut and the run handled as on a disconnect
      (cancelled, reason ``send timeout ...``). None: wait forever.

    Beyond the runtime's ``limits.max_concurrent_runs`` runs in flight (see
    :class:`RunsInFlight`), or once it is shutting down, the request gets ``503`` with
    ``Retry-After`` and starts nothing.

    A request with a ``Last-Event-ID`` header resumes the run named by ``run_id`` instead of
    starting one (204 if there is nothing to resume, or if that run has another owner); a
    malformed one gets a 400.

    ``protocol``: the protocol the client speaks (docs/protocols.md): ``"runstream"`` (the
    above), ``"vercel-ai"``, ``"ag-ui"`` or ``"openai"`` (streamed); ``options`` are that
    protocol's adapter options (a :class:`ChatRequest`'s ``options``), kept with the run in
    the event log so that a resume, on any process, frames the run as this stream did. The
    run, its cancellation, failure and resume work as in runstream's protocol. For OpenAI's
    ``stream: false`` see :func:`completion_response`.
    """
    return run_response(RunResponse, pipeline, parameters, config, run_id, on_disconnect,
                        lifecycle, ping_interval, send_timeout, owner, protocol, options)


def run_response(cls: type[R], pipeline: AsyncPipeline | Pipeline,
                 parameters: Mapping[str, Any] | None,
                 config: Runtime | Config | str | os.PathLike[str] | None, run_id: str | None,
                 on_disconnect: OnDisconnect, lifecycle: bool, ping_interval: float | None,
                 send_timeout: float | None, owner: str | None, protocol: str,
                 options: Mapping[str, Any] | None) -> R:
    """:func:`sse_response`'s checks, then a ``cls`` (a :class:`RunResponse`)."""
    if on_disconnect not in ("cancel", "continue"):
        raise ValueError(f"on_disconnect must be 'cancel' or 'continue', got {on_disconnect!r}")
    check_send_timeout(send_timeout)
    if isinstance(pipeline, Pipeline):
        pipeline = pipeline.as_async()
    runtime = shared_runtime(config, "sse_response()")
    check_owner(owner)
    given = run_id is not None
    if run_id is None:
        run_id = new_run_id()
    else:
        check_run_id(run_id)
    return cls(pipeline, parameters, runtime, run_id, given, on_disconnect, lifecycle,
               ping_interval, send_timeout, owner, check_protocol(protocol), options)

