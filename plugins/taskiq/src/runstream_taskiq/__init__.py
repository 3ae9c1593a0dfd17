"""runstream-taskiq: the ``taskiq`` executor (whole runs on a pool of worker processes, their
events streamed back through the shared event log)."""

import typing as _t  # private: the package's public names are __all__ (see __dir__)

if _t.TYPE_CHECKING:
    from ._executor import TaskiqExecutor

__all__ = ["TaskiqExecutor"]


def __getattr__(name: str) -> _t.Any:
    # Imported on first use, not with the package: runstream loads this package's entry point
    # (runstream_taskiq._plugin) in every process, and _executor imports taskiq.
    if name == "TaskiqExecutor":
        from ._executor import TaskiqExecutor

        globals()[name] = TaskiqExecutor
        return TaskiqExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
