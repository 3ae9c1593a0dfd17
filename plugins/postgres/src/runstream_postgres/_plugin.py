"""Entry point module of runstream-postgres: registers the ``postgres`` run log store."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl


@hookimpl
def register_run_log_stores(register: Register) -> None:
    """Register :class:`~runstream_postgres.PostgresStore` as ``postgres``, by reference: psycopg
    and its pool are imported only by a process whose config picks ``postgres``."""
    register("postgres", "runstream_postgres._store:PostgresStore")
