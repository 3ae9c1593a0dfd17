"""runstream task types for Python functions: :class:`AsyncPythonTask` and :class:`PythonTask`."""

from ._tasks import AsyncPythonTask, PythonTask

__all__ = ["AsyncPythonTask", "PythonTask"]
