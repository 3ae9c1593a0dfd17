"""runstream-postgres: the ``postgres`` run log store, run logs in PostgreSQL shared by every
process and machine (psycopg 3 and its connection pool).

Choose it in the config: ``run_log_store: {type: postgres, dsn: "postgresql://..."}``; see
:class:`PostgresStore` for its options.
"""

import typing as _t  # private: the package's public names are __all__ (see __dir__)

from runstream import lazy_exports as _lazy_exports

if _t.TYPE_CHECKING:
    from ._store import PostgresStore

__all__ = ["PostgresStore"]


# Imported on first use, not with the package: runstream loads this package's entry point
# (runstream_postgres._plugin) in every process, and _store imports psycopg.
__getattr__, __dir__ = _lazy_exports(__name__, {"PostgresStore": "_store"})
