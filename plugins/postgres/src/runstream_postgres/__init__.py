"""runstream-postgres: the ``postgres`` run log store, run logs in PostgreSQL shared by every
process and machine (psycopg 3 and its connection pool).

Choose it in the config: ``run_log_store: {type: postgres, dsn: "postgresql://..."}``; see
:class:`PostgresStore` for its options.
"""

from ._store import PostgresStore

__all__ = ["PostgresStore"]
