"""The built-in ``memory`` event log passes the event log contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from runstream import Config, EventLog, MemoryEventLog, Runtime, hookimpl
from runstream.hookspecs import Register

from tests._eventlog_contract import EventLogContract, aclosing_log, chunks


class TestMemoryEventLog(EventLogContract):
    @pytest.fixture
    async def event_log(self) -> AsyncIterator[EventLog]:
        async for log in aclosing_log(MemoryEventLog(max_events=100, max_run_bytes=50_000)):
            yield log

    @pytest.fixture
    def second_log(self) -> None:
        return None

    @pytest.fixture
    async def short_ttl_log(self) -> AsyncIterator[EventLog]:
        async for log in aclosing_log(MemoryEventLog(ttl=0.1)):
            yield log


async def test_the_default_event_log_is_memory_and_configurable() -> None:
    async with Runtime(Config.model_validate({"event_log": {"type": "memory", "ttl": 5,
                                                            "max_events": 7}})) as runtime:
        log = runtime.event_log
        assert isinstance(log, MemoryEventLog)
        assert (log.ttl, log.max_events, log.shared) == (5, 7, False)
        assert runtime.reconnect_grace == 0.0
    async with Runtime(Config()) as runtime:
        assert type(runtime.event_log) is MemoryEventLog


async def test_total_bytes_bound_forgets_ended_runs_first() -> None:
    log = MemoryEventLog(max_total_bytes=20_000)
    await log.create("ended", pipeline="p", owner=None)
    await log.append("ended", chunks(1, 50))
    await log.end("ended", "completed")
    await log.create("running", pipeline="p", owner=None)
    await log.append("running", chunks(1, 200))
    assert await log.get_run("ended") is None
    assert await log.get_run("running") is not None
    await log.close()


def test_an_unknown_event_log_type_is_a_config_error() -> None:
    from runstream import ConfigError

    with pytest.raises(ConfigError, match="event_log"):
        Runtime(Config.model_validate({"event_log": {"type": "nosuch"}}))


class CountingLog(MemoryEventLog):
    """A plugin's event log: the memory one, counting what it was told."""

    label: str = "counting"


class CountingPlugin:
    @hookimpl
    def register_event_logs(self, register: Register) -> None:
        register("counting", CountingLog)


async def test_a_plugin_registers_an_event_log_that_the_config_picks() -> None:
    config = Config.model_validate({"event_log": {"type": "counting", "label": "mine"}})
    async with Runtime(config, plugins=[CountingPlugin()], entry_points=False) as runtime:
        assert isinstance(runtime.event_log, CountingLog)
        assert runtime.event_log.label == "mine"
        info = next(i for i in runtime.plugins.infos if i.name.startswith("CountingPlugin"))
        assert info.registered == {"event_logs": ["counting"]}
