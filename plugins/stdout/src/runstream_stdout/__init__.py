"""runstream-stdout: the ``stdout`` sink, pretty live output on a terminal, JSON lines
otherwise."""

import typing as _t  # private: the package's public names are __all__ (see __dir__)

from runstream import lazy_exports as _lazy_exports

if _t.TYPE_CHECKING:
    from ._sink import StdoutSink

__all__ = ["StdoutSink"]


# Imported on first use, not with the package: runstream loads this package's entry point
# (runstream_stdout._plugin) in every process, and _sink imports rich.
__getattr__, __dir__ = _lazy_exports(__name__, {"StdoutSink": "_sink"})
