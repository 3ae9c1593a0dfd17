"""The options of the ``redis`` event log (``event_log: {type: redis, ...}`` in the config)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator
from runstream import EventLog

from ._url import SCHEMES, mask_url

__all__ = ["RedisOptions"]


class RedisOptions(EventLog):
    """The fields of :class:`runstream_redis.RedisEventLog` (docs/event-log.md, ``redis``)."""

    url: str = Field(default="redis://127.0.0.1:6379/0", repr=False,
                     description="The Redis: `redis://[[user]:password@]host[:port][/db]`, "
                                 "`rediss://` (TLS) or `unix:///path?db=0`.")
    key_prefix: str = Field(default="runstream:",
                            description="Prefix of every key and channel this log uses.")
    slot_lease: float = Field(
        default=15.0, ge=0.3, le=3600,
        description="Seconds a lease (a run slot, a reader, a running run's driver) lasts "
                    "unless renewed; each process renews its own every third of it, so a killed "
                    "process frees them within this time.")
    connect_timeout: float = Field(default=2.0, gt=0, le=60,
                                   description="Seconds to connect to Redis.")
    socket_timeout: float = Field(default=5.0, gt=0, le=300,
                                  description="Seconds a Redis command may take.")
    block: float = Field(
        default=2.0, gt=0, le=60,
        description="Seconds a following reader waits for new records before it checks the "
                    "run is still there (and reads its stream).")
    max_connections: int = Field(default=64, ge=1,
                                 description="Connections for reads, per process (writes have one "
                                             "connection of their own: the writer's).")
    max_followers: int = Field(
        default=1000, ge=1,
        description="Unused: every follower of a process shares one pub/sub connection "
                    "(docs/event-log.md); accepted so that existing configs still load.")
    running_expiry: float = Field(
        default=7 * 86_400.0, gt=0,
        description="Seconds after which a run still `running` is forgotten anyway (its "
                    "process died before it could end it).")
    write_queue: int = Field(
        default=10_000, ge=1,
        description="Writes (appends, ends, ...) waiting for the writer's next round trip, per "
                    "process; past it (or `write_queue_bytes`) a run waits for room.")
    write_queue_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024,
        description="Bytes of writes waiting for the writer's next round trip, per process.")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        scheme = url.partition("://")[0]
        if scheme not in SCHEMES or "://" not in url:
            raise ValueError(f"{mask_url(url)!r} is not a Redis URL: use redis://host:port/db, "
                             "rediss://... (TLS) or unix:///path/to/socket")
        return url

    def __repr_args__(self) -> Any:
        yield "url", mask_url(self.url)
        yield from super().__repr_args__()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "url": mask_url(self.url)}
