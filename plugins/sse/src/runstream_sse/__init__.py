"""runstream-sse: stream runstream runs to HTTP clients as Server-Sent Events.

- :func:`sse_response`: a Starlette/FastAPI response that runs a pipeline and streams its events.
- :func:`runs_router`: a FastAPI router with ``GET /runs/{run_id}``, the replay endpoint
  ``GET /runs/{run_id}/events`` (``Last-Event-ID`` resumes) and ``POST /runs/{run_id}/cancel``.
- :class:`SSE`: both, bound to one runtime (and its event log, where the events live), and a
  lifespan that ends every stream cleanly when the server stops.
- :class:`RunsInFlight`: the runs streamed for a runtime (``limits.max_concurrent_runs``: 503
  beyond it) and their shutdown.
- :class:`SSESink`: the ``sse`` sink, for runs started outside HTTP (the event log).
- :data:`ANONYMOUS`, :data:`Authorize`: who may read a run (its ``owner``, the router's
  ``authorize`` dependency; docs/security.md).
- :func:`sse_openapi_response`: how an event stream endpoint is documented in OpenAPI.

The protocol is described in docs/sse.md.
"""

from ._facade import SSE
from ._inflight import RunsInFlight
from ._owners import ANONYMOUS, Authorize
from ._response import SSEResponse
from ._router import runs_router
from ._sink import SSESink
from ._stream import OnDisconnect, sse_response
from ._wire import sse_openapi_response

__all__ = [
    "ANONYMOUS",
    "Authorize",
    "OnDisconnect",
    "RunsInFlight",
    "SSE",
    "SSEResponse",
    "SSESink",
    "runs_router",
    "sse_openapi_response",
    "sse_response",
]
