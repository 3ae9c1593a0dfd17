"""runstream-postgres: the ``postgres`` run log store, run logs in PostgreSQL shared by every
process and machine (psycopg 3 and its connection pool).

Choose it in the config: ``run_log_store: {type: postgres, dsn: "postgresql://..."}``; see
:class:`PostgresStore` for its options.
"""

import typing as _t  # private: the package's public names are __all__ (see __dir__)

if _t.TYPE_CHECKING:
    from ._store import PostgresStore

__all__ = ["PostgresStore"]


def __getattr__(name: str) -> _t.Any:
    # Imported on first use, not with the package: runstream loads this package's entry point
    # (runstream_postgres._plugin) in every process, and _store imports psycopg.
    if name == "PostgresStore":
        from ._store import PostgresStore

        globals()[name] = PostgresStore
        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
