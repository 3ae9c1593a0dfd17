"""runstream-stdout: the ``stdout`` sink, pretty live output on a terminal, JSON lines
otherwise."""

from ._sink import StdoutSink

__all__ = ["StdoutSink"]
