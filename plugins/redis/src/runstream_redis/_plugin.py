"""Entry point module of runstream-redis: registers the ``redis`` event log."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl


@hookimpl
def register_event_logs(register: Register) -> None:
    # By reference: redis-py is imported only by a process whose config picks `redis`.
    register("redis", "runstream_redis._log:RedisEventLog")
