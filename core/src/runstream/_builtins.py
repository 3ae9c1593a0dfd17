"""runstream's built-in components, registered through the same hooks as any plugin."""

from __future__ import annotations

from .hookspecs import Register, hookimpl


@hookimpl
def register_executors(register: Register) -> None:
    from ._executor import LocalExecutor

    register("local", LocalExecutor)


@hookimpl
def register_event_logs(register: Register) -> None:
    from ._eventlog_memory import MemoryEventLog

    register("memory", MemoryEventLog)


@hookimpl
def register_run_log_stores(register: Register) -> None:
    from ._store_fs import FileSystemStore
    from ._store_memory import MemoryStore
    from ._store_sqlite import SqliteStore

    register("sqlite", SqliteStore)
    register("file-system", FileSystemStore)
    register("memory", MemoryStore)
