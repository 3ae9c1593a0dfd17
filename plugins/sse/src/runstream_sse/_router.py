"""``runs_router()``: run status and event replay over HTTP."""

from __future__ import annotations

import logging
import os
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from runstream import (
    Config,
    EventLogError,
    LoggedRun,
    RunIdError,
    RunLog,
    RunNotFoundError,
    Runtime,
    StoreError,
)
from starlette.responses import JSONResponse, Response

from ._binding import shared_runtime
from ._inflight import RunsInFlight
from ._owners import Authorize, may_read, no_authorize
from ._proto_http import PROTOCOLS, framer, stored_options
from ._response import RETRY_AFTER, ReplayResponse, SSEResponse, check_send_timeout
from ._wire import check_run_id, parse_event_id, sse_openapi_response

__all__ = ["runs_router"]

logger = logging.getLogger("runstream.sse")


def runs_router(
    config: Runtime | Config | str | os.PathLike[str] | None = None,
    *,
    prefix: str = "/runs",
    ping_interval: float | None = 15.0,
    send_timeout: float | None = 30.0,
    authorize: Authorize | None = None,
) -> APIRouter:
    """A FastAPI router with a run's status, the replay of its events, and its cancellation.

    A run is served only to its owner: ``authorize`` is a FastAPI dependency that returns the
    caller's identity (``def who(request: Request) -> str | None``; it may use ``Cookie``,
    ``Header``, ``Depends``..., or raise ``HTTPException(401)`` itself), which must equal the
    run's ``owner`` (the ``owner=`` it was started with). For a run of another owner, a run
    without an owner (the CLI, batch jobs) or a caller without an identity (``None``), both
    routes answer ``404`` exactly as for an unknown run. Without ``authorize`` the router can
    tell nobody apart: it serves only the runs :func:`sse_response` started without an
    ``owner`` (owner :data:`ANONYMOUS`), to anyone who has their id. See docs/security.md.

    - ``GET {prefix}/{run_id}``: the run log as JSON, from the run log store of the runtime
      for ``config`` (404 for an unknown run, 503 with ``Retry-After`` when the store cannot
      be read).
    - ``GET {prefix}/{run_id}/events``: the run's events as Server-Sent Events, the same frames
      as :func:`sse_response` sent: those after the ``Last-Event-ID`` header (or ``?after=N``;
      the header wins; default: from the start), then the live tail while the run goes on.
      ``?lifecycle=true`` includes the lifecycle events. ``?protocol=vercel-ai`` (or
      ``ag-ui``, ``openai``) frames them in that protocol, with the options the run was
      started with (docs/protocols.md): a client of that protocol resumes with its
      ``Last-Event-ID``. 400 for a malformed id or an unknown protocol, 204 when the
      run has ended and nothing is after the id, 404/410 when its events are not (or no longer)
      kept, 503 with ``Retry-After`` when the event log cannot be read.
    - ``POST {prefix}/{run_id}/cancel``: stop a running run now (a Stop button), whichever
      process of those sharing the event log drives it, also one started with
      ``on_disconnect="continue"``: ``202 {"run_id": ..., "cancelled": true}`` once the signal
      is sent (its clients get ``run.cancelled``), 409 if the run has already ended, 404 for
      an unknown run (or another owner's), 503 when the event log is unavailable.

    The events are read from the runtime's event log (``event_log:`` in the config), which
    :func:`sse_response` and the ``sse`` sink with the same runtime write into.
    ``send_timeout`` ends a replay whose client stops reading (see :func:`sse_response`); a
    shutdown (:meth:`RunsInFlight.shutdown`) ends replays too.
    """
    check_send_timeout(send_timeout)
    runtime = shared_runtime(config, "runs_router()")
    inflight = RunsInFlight.for_runtime(runtime)
    router = APIRouter(prefix=prefix, tags=["runs"])
    caller_of = Depends(no_authorize if authorize is None else authorize)

    async def load(run_id: str, caller: object) -> RunLog | None:
        """The run's log if the caller may read it, else None (as for an unknown run)."""
        try:
            log = await runtime.store.get(check_run_id(run_id))
        except (RunIdError, RunNotFoundError):
            return None
        except StoreError as exc:  # a database that is down: say so, not a 500 and a traceback
            logger.warning("GET %s/%s: the run log store failed: %s", prefix, run_id, exc)
            raise HTTPException(503, "the run log store is unavailable; retry shortly",
                                headers={"Retry-After": str(RETRY_AFTER)}) from None
        return log if may_read(log.owner, caller) else None

    @router.get("/{run_id}", summary="A run's run log",
                responses={200: {"model": RunLog, "description": "The run log."},
                           404: problem("No such run."),
                           503: problem("The run log store is unavailable; retry later.")})
    async def get_run(run_id: str, caller: object = caller_of) -> Response:
        log = await load(run_id, caller)
        if log is None:
            raise HTTPException(404, f"no run '{run_id}' in the run log store")
        return Response(log.to_json(), media_type="application/json")

    async def run_events(
        request: Request,
        run_id: str,
        after: str | None = Query(None, description="Send the events after this id."),
        lifecycle: bool = Query(False, description="Include the lifecycle events."),
        protocol: str = Query("runstream", description="The protocol of the frames: "
                              f"{', '.join(PROTOCOLS)} (docs/protocols.md)."),
        caller: object = caller_of,
    ) -> Response:
        try:
            header = request.headers.get("last-event-id")
            if header:
                cursor = parse_event_id(header, "Last-Event-ID")
            elif after is not None:
                cursor = parse_event_id(after, "after")
            else:
                cursor = 0
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        if protocol not in PROTOCOLS:
            raise HTTPException(400, f"unknown protocol {protocol!r}; protocols: "
                                     f"{', '.join(PROTOCOLS)}")
        info = await logged(run_id, caller)
        if info is None:
            log = await load(run_id, caller)
            if log is None:
                raise HTTPException(404, f"no run '{run_id}'")
            if log.status in ("running", "queued"):
                raise HTTPException(404, f"run '{run_id}' is {log.status}, but its events are not "
                                         "published here (stream it with sse_response, or add "
                                         "the sse sink to the config)")
            raise HTTPException(410, f"run '{run_id}' has ended ({log.status}) and its events "
                                     f"are no longer kept; GET {prefix}/{run_id} has its run log")
        if info.ended and info.last_seq <= cursor:
            return Response(status_code=204)  # 204 also tells an EventSource to stop
        frames = framer(protocol, run_id, stored_options(info, protocol), cursor)
        return ReplayResponse(inflight, run_id, cursor, lifecycle=lifecycle,
                              ping_interval=ping_interval, send_timeout=send_timeout,
                              framer=frames,
                              headers=None if frames is None else frames.adapter.headers)

    async def logged(run_id: str, caller: object) -> LoggedRun | None:
        """What the event log has of the run if the caller may read it, else None; 503 if the
        log cannot be read."""
        try:
            info = await inflight.find(run_id)
        except EventLogError as exc:
            raise HTTPException(503, f"the event log is unavailable ({exc}); retry shortly",
                                headers={"Retry-After": str(RETRY_AFTER)}) from None
        if info is None or not may_read(info.owner, caller):
            return None
        return info

    @router.post("/{run_id}/cancel", status_code=202, summary="Cancel a running run",
                 responses={202: {"description": "The cancel signal was sent.", "content": {
                     "application/json": {"schema": {"type": "object", "properties": {
                         "run_id": {"type": "string"}, "cancelled": {"type": "boolean"}}}}}},
                            404: problem("No such run."),
                            409: problem("The run has already ended."),
                            503: problem("The event log is unavailable; retry later.")})
    async def cancel_run(run_id: str, caller: object = caller_of) -> Response:
        info = await logged(run_id, caller)
        if info is None:
            raise HTTPException(404, f"no run '{run_id}' in the event log")
        try:
            sent = (not info.ended
                    and await runtime.event_log.cancel(run_id, "cancelled by the client"))
            if not sent:
                info = await inflight.find(run_id) or info
        except EventLogError as exc:
            raise HTTPException(503, f"the event log is unavailable ({exc}); retry shortly",
                                headers={"Retry-After": str(RETRY_AFTER)}) from None
        if not sent:
            status = info.status if info.ended else "ended"
            raise HTTPException(409, f"run '{run_id}' has already ended ({status})")
        return JSONResponse({"run_id": run_id, "cancelled": True}, status_code=202)

    # GET is documented; HEAD (the headers only) is the same route, kept out of the schema so
    # that the two do not share one operation id.
    router.add_api_route(
        "/{run_id}/events", run_events, methods=["GET"], response_class=SSEResponse,
        status_code=200,
        summary="Replay and follow a run's events (Server-Sent Events)",
        responses={200: sse_openapi_response(),
                   204: {"description": "The run has ended and nothing follows the given id."},
                   400: problem("A malformed event id."),
                   404: problem("No such run, or its events are not published here."),
                   410: problem("The run's events are no longer kept."),
                   503: problem("The event log is unavailable; retry later.")})
    router.add_api_route("/{run_id}/events", run_events, methods=["HEAD"], status_code=200,
                         response_class=SSEResponse, include_in_schema=False)
    return router


def problem(description: str) -> dict[str, Any]:
    """OpenAPI of an error response, ``{"detail": "what went wrong and what to do"}``."""
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"detail": {"type": "string"}},
        "required": ["detail"]}}}}
