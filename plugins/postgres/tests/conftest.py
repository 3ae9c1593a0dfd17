"""A PostgreSQL server for the session (tests/_servers.py: initdb + postgres on a free
127.0.0.1 port, as the ``postgres`` user when we are root), and a fresh schema per test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from runstream_postgres import PostgresStore

from tests._servers import PostgresServer, postgres_server
from tests.conftest import in_tmp_cwd

__all__ = ["in_tmp_cwd"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server; stopped (by pid) and removed at the end."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def dsn(postgres: PostgresServer) -> str:
    """DSN of the session's test database."""
    return postgres.create_database("runstream_tests")


@pytest.fixture
def schema() -> str:
    """A schema name of this test's own: its tables start empty."""
    return f"t_{secrets.token_hex(6)}"


@pytest.fixture
async def store(dsn: str, schema: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(dsn=dsn, schema_name=schema)
    yield s
    await s.close()
