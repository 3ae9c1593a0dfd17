"""runstream-sse: stream runstream runs to HTTP clients as Server-Sent Events.

- :func:`sse_response`: a Starlette/FastAPI response that runs a pipeline and streams its events.
- :func:`runs_router`: a FastAPI router with ``GET /runs/{run_id}`` and the replay endpoint
  ``GET /runs/{run_id}/events`` (``Last-Event-ID`` resumes).
- :class:`ReplayBuffer`: the recent events of runs, shared by the two above.
- :class:`SSE`: both, bound to one runtime and replay buffer.
- :class:`SSESink`: the ``sse`` sink, for runs started outside HTTP.

The protocol is described in docs/sse.md.
"""

from ._facade import SSE
from ._replay import ReplayBuffer
from ._response import SSEResponse
from ._router import runs_router
from ._sink import SSESink
from ._stream import OnDisconnect, sse_response

__all__ = [
    "OnDisconnect",
    "ReplayBuffer",
    "SSE",
    "SSEResponse",
    "SSESink",
    "runs_router",
    "sse_response",
]
