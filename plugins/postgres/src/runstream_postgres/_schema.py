"""The store's tables, created or migrated when a process first uses the database.

Every process that starts runs :func:`migrate`; many may start at once (``uvicorn --workers 8``,
replicas rolled out together). Each migration runs in one transaction that first takes a
transaction-level advisory lock (released at commit or rollback, even if the process dies), so
exactly one process creates the tables and the others wait for it, then find them there.
``runstream_schema`` holds the version the tables are at; each step of :data:`MIGRATIONS`
brings them one version further.
"""

from __future__ import annotations

from typing import Any, LiteralString

import psycopg
from psycopg import sql

#: The schema version this release writes and reads.
VERSION = 1

#: Tables of the store, in its schema (``schema_name``). Names are prefixed: the default schema,
#: ``public``, usually holds the application's own tables too.
RUNS = "runstream_runs"
LEASES = "runstream_leases"
VERSIONS = "runstream_schema"

#: Statements that bring the tables from version ``i`` to ``i + 1`` (``{s}`` is the schema).
#: ``log`` is the run log as JSON text, exactly as ``RunLog.to_json()`` writes it: text, not
#: jsonb, because jsonb refuses ``\u0000`` in strings, which a parameter may hold.
MIGRATIONS: list[list[LiteralString]] = [
    [
        """CREATE TABLE {s}.runstream_runs (
               run_id   text PRIMARY KEY,
               pipeline text NOT NULL,
               status   text NOT NULL,
               started  timestamptz NOT NULL,
               ended    timestamptz,
               process  text,
               log      text NOT NULL)""",
        # `runs ls` (newest first) and `runs ls --status running` (and recovery) read these.
        "CREATE INDEX runstream_runs_started ON {s}.runstream_runs (started DESC)",
        "CREATE INDEX runstream_runs_status ON {s}.runstream_runs (status, started DESC)",
        """CREATE TABLE {s}.runstream_leases (
               process text PRIMARY KEY,
               until   timestamptz NOT NULL)""",
    ],
]


class NewerSchemaError(Exception):
    """The tables were written by a newer release of runstream-postgres."""


async def migrate(conn: psycopg.AsyncConnection[tuple[Any, ...]], schema: str) -> int:
    """Create or migrate the store's tables in ``schema``; returns the version found before.
    Safe to run from many processes at once (see the module docstring)."""
    s = sql.Identifier(schema)
    async with conn.transaction():
        # One lock per schema: stores in other schemas of the database do not wait.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                           (f"runstream-postgres:{schema}",))
        cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if await cur.fetchone() is None:
            await conn.execute(sql.SQL("CREATE SCHEMA {s}").format(s=s))
        await conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {s}.runstream_schema (version integer NOT NULL)"
        ).format(s=s))
        cur = await conn.execute(sql.SQL(
            "SELECT max(version) FROM {s}.runstream_schema").format(s=s))
        row = await cur.fetchone()
        found = int(row[0]) if row is not None and row[0] is not None else 0
        if found > VERSION:
            raise NewerSchemaError(
                f"its tables are at schema version {found}, newer than this runstream-postgres "
                f"knows ({VERSION}); upgrade runstream-postgres in every process that uses it")
        for version in range(found, VERSION):
            for statement in MIGRATIONS[version]:
                await conn.execute(sql.SQL(statement).format(s=s))
            await conn.execute(sql.SQL(
                "INSERT INTO {s}.runstream_schema (version) VALUES (%s)").format(s=s),
                (version + 1,))
    return found
