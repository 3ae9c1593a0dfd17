"""Entry point module of runstream-postgres: registers the ``postgres`` run log store."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl

from ._store import PostgresStore


@hookimpl
def register_run_log_stores(register: Register) -> None:
    """Register :class:`PostgresStore` as ``postgres``."""
    register("postgres", PostgresStore)
