"""runstream-file: the ``file`` sink, JSON lines per run, and a reader for those files."""

from ._paths import DEFAULT_PATH, PLACEHOLDERS, EventPathError, PathTemplate
from ._reader import read_events
from ._sink import FileSink

__all__ = [
    "DEFAULT_PATH",
    "PLACEHOLDERS",
    "EventPathError",
    "FileSink",
    "PathTemplate",
    "read_events",
]
