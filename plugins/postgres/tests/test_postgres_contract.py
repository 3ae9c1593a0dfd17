"""The postgres store passes the store contract suite that runstream's own stores pass, with a
second store object (its own pool, as another process's) on the same tables."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from runstream import RunLogStore
from runstream.testing import RunLogStoreContract
from runstream_postgres import PostgresStore


class TestPostgresStore(RunLogStoreContract):
    @pytest.fixture
    async def store(self, dsn: str, schema: str) -> AsyncIterator[RunLogStore]:
        s = PostgresStore(dsn=dsn, schema_name=schema)
        yield s
        await s.close()

    @pytest.fixture
    async def store_twin(self, dsn: str, schema: str) -> AsyncIterator[RunLogStore]:
        s = PostgresStore(dsn=dsn, schema_name=schema)
        yield s
        await s.close()
