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
- :data:`ADAPTERS`, :func:`make_adapter`, :class:`ProtocolAdapter` and its three protocols
  (:class:`VercelAdapter`, :class:`AGUIAdapter`, :class:`OpenAIAdapter`),
  :func:`openai_completion`, :func:`parse_chat_request`, :class:`ChatRequest`,
  :func:`completion_response` (OpenAI ``stream: false``), :data:`PROTOCOLS`: the front ends'
  protocols (docs/protocols.md); ``sse_response(..., protocol=...)`` streams in them.

The protocol is described in docs/sse.md.
"""

import typing as _t  # private: the public names are __all__ (see __dir__)

from runstream import lazy_exports as _lazy_exports

if _t.TYPE_CHECKING:
    from ._adapters import ADAPTERS, make_adapter
    from ._facade import SSE
    from ._inflight import RunsInFlight
    from ._owners import ANONYMOUS, Authorize
    from ._proto_agui import AGUIAdapter
    from ._proto_bodies import ChatRequest, parse_chat_request
    from ._proto_complete import CompletionResponse, completion_response
    from ._proto_http import PROTOCOLS
    from ._proto_openai import OpenAIAdapter, openai_completion
    from ._proto_vercel import VercelAdapter
    from ._protocols import ProtocolAdapter
    from ._response import SSEResponse
    from ._router import runs_router
    from ._sink import SSESink
    from ._startup import StartupErrors
    from ._stream import OnDisconnect, sse_response
    from ._wire import sse_openapi_response

__all__ = [
    "ADAPTERS",
    "AGUIAdapter",
    "ANONYMOUS",
    "Authorize",
    "ChatRequest",
    "CompletionResponse",
    "OnDisconnect",
    "OpenAIAdapter",
    "PROTOCOLS",
    "ProtocolAdapter",
    "RunsInFlight",
    "SSE",
    "SSEResponse",
    "SSESink",
    "StartupErrors",
    "VercelAdapter",
    "completion_response",
    "make_adapter",
    "openai_completion",
    "parse_chat_request",
    "runs_router",
    "sse_openapi_response",
    "sse_response",
]

#: Public name -> the private module that defines it, imported on first use: runstream loads this
#: package's entry point (runstream_sse._plugin, for the `sse` sink) in every process, and most
#: of these modules import Starlette and FastAPI, which a process that serves no HTTP (a worker,
#: the CLI) need not pay for.
_WHERE = {
    "ADAPTERS": "_adapters",
    "AGUIAdapter": "_proto_agui",
    "ANONYMOUS": "_owners",
    "Authorize": "_owners",
    "ChatRequest": "_proto_bodies",
    "CompletionResponse": "_proto_complete",
    "OnDisconnect": "_stream",
    "OpenAIAdapter": "_proto_openai",
    "PROTOCOLS": "_proto_http",
    "ProtocolAdapter": "_protocols",
    "RunsInFlight": "_inflight",
    "SSE": "_facade",
    "SSEResponse": "_response",
    "SSESink": "_sink",
    "StartupErrors": "_startup",
    "VercelAdapter": "_proto_vercel",
    "completion_response": "_proto_complete",
    "make_adapter": "_adapters",
    "openai_completion": "_proto_openai",
    "parse_chat_request": "_proto_bodies",
    "runs_router": "_router",
    "sse_openapi_response": "_wire",
    "sse_response": "_stream",
}

__getattr__, __dir__ = _lazy_exports(__name__, _WHERE)
