"""runstream-taskiq: the ``taskiq`` executor (whole runs on a pool of worker processes, their
events streamed back through the shared event log)."""

from ._executor import TaskiqExecutor

__all__ = ["TaskiqExecutor"]
