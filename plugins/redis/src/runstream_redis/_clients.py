"""The connections of one redis event log instance, its scripts, and how their errors read."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from runstream import EventLogError

from . import _scripts
from ._url import mask_url, scrub
from ._writer import Writer

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["Clients", "as_error", "errors"]


class Clients:
    """The ``writer`` (one connection: every write, coalesced; see ``_writer``), the
    ``commands`` pool for reads, and ``pubsub``: the pool of the tail's one pub/sub connection
    (see ``_tail``), however many readers follow runs. No call ever blocks in Redis.

    One retry after a connection error (a connection that Redis closed, e.g. when it
    restarted), with no backoff: a Redis that is down fails the call at once."""

    def __init__(self, url: str, *, connect_timeout: float, socket_timeout: float,
                 max_connections: int, write_queue: int, write_queue_bytes: int) -> None:
        options: dict[str, Any] = {"socket_connect_timeout": connect_timeout,
                                   "retry": Retry(NoBackoff(), 1), "protocol": 2,
                                   # Any text a caller gives (an owner, a cancel reason) is
                                   # kept as it is, lone surrogates too.
                                   "encoding_errors": "surrogatepass"}
        self.commands = Redis.from_pool(BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=socket_timeout,
            socket_timeout=socket_timeout, **options))
        # XREAD's entries as Redis sends them: _codec.parse_entries reads them without
        # building a dict per entry.
        self.commands.set_response_callback("XREAD", _raw)
        # Writes (subscriptions) time out; reads wait for messages as long as it takes.
        self.pubsub = ConnectionPool.from_url(url, max_connections=1,
                                              socket_timeout=socket_timeout, **options)
        self.scripts: dict[str, AsyncScript] = {
            name: self.commands.register_script(getattr(_scripts, name))
            for name in _scripts.__all__}
        self.writer = Writer(
            ConnectionPool.from_url(url, max_connections=1, socket_timeout=socket_timeout,
                                    **options),
            {name: (script.sha, script.script) for name, script in self.scripts.items()},
            timeout=socket_timeout, max_entries=write_queue, max_bytes=write_queue_bytes)

    async def script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self.scripts[name](keys=keys, args=args)

    async def aclose(self) -> None:
        await self.writer.close()
        with contextlib.suppress(RedisError, OSError):
            await self.commands.aclose()


@contextlib.contextmanager
def errors(url: str, doing: str) -> Iterator[None]:
    """Redis's errors as :class:`runstream.EventLogError`, naming the server, never its
    password."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise as_error(url, doing, exc) from None


def as_error(url: str, doing: str, exc: BaseException) -> EventLogError:
    """The :class:`runstream.EventLogError` that ``errors`` raises for ``exc``."""
    reason = scrub(str(exc) or type(exc).__name__, url)
    return EventLogError(f"event log: cannot {doing}: Redis at {mask_url(url)}: {reason}")


def _raw(response: Any, **options: Any) -> Any:
    return response
