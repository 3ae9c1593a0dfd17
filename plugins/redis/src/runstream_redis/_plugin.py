"""Entry point module of runstream-redis: registers the ``redis`` event log."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl


@hookimpl
def register_event_logs(register: Register) -> None:
    from ._log import RedisEventLog

    register("redis", RedisEventLog)
