"""runstream-shout: an example runstream plugin (a task type and a sink)."""

from ._sink import TranscriptSink
from ._task import ShoutTask

__all__ = ["ShoutTask", "TranscriptSink"]
