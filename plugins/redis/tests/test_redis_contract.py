"""The redis event log passes the event log contract, against a real redis-server; a second
instance on the same server plays another process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from runstream import EventLog

from tests._eventlog_contract import EventLogContract, aclosing_log


class TestRedisEventLog(EventLogContract):
    @pytest.fixture
    async def event_log(self, make_log: Any) -> AsyncIterator[EventLog]:
        async for log in aclosing_log(make_log(max_events=100, max_run_bytes=50_000)):
            yield log

    @pytest.fixture
    async def second_log(self, make_log: Any) -> AsyncIterator[EventLog]:
        async for log in aclosing_log(make_log(max_events=100, max_run_bytes=50_000)):
            yield log

    @pytest.fixture
    async def short_ttl_log(self, make_log: Any) -> AsyncIterator[EventLog]:
        async for log in aclosing_log(make_log(ttl=0.1)):
            yield log
