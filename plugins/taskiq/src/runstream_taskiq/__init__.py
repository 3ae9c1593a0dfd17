"""runstream-taskiq: the ``taskiq`` executor (whole runs on a pool of worker processes, their
events streamed back through the shared event log)."""

import typing as _t  # private: the package's public names are __all__ (see __dir__)

from runstream import lazy_exports as _lazy_exports

if _t.TYPE_CHECKING:
    from ._executor import TaskiqExecutor

__all__ = ["TaskiqExecutor"]


# Imported on first use, not with the package: runstream loads this package's entry point
# (runstream_taskiq._plugin) in every process, and _executor imports taskiq.
__getattr__, __dir__ = _lazy_exports(__name__, {"TaskiqExecutor": "_executor"})
