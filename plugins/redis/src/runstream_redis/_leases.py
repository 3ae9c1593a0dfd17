"""Leases this process holds in Redis (run slots, readers), renewed by one background task.

A lease is a member of a sorted set whose score is the server time it expires at. This process
renews its own every ``lease / 3`` seconds; a process killed with SIGKILL stops renewing, and its
leases expire ``lease`` seconds later at most: its slots free themselves and its readers stop
being counted, with no process left to clean up after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

__all__ = ["Leases"]

logger = logging.getLogger("runstream.redis")

#: Renews the ``(key, member)`` leases given for ``lease_ms`` more milliseconds.
Renew = Callable[[list[tuple[str, str]]], Awaitable[object]]


class Leases:
    """The ``(zset key, member)`` leases this process holds, and the task that renews them."""

    def __init__(self, lease: float, renew: Renew, where: str) -> None:
        self.lease = lease
        self._renew = renew
        self.where = where
        self.held: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self._task: asyncio.Task[None] | None = None

    def add(self, key: str, member: str) -> None:
        self.held[(key, member)] = None
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="runstream-redis lease renewal")

    def discard(self, key: str, member: str) -> None:
        self.held.pop((key, member), None)

    def members(self, key: str) -> list[str]:
        return [m for k, m in self.held if k == key]

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.lease / 3)
            if not self.held:
                continue
            try:
                await self._renew(list(self.held))
            except (RedisError, OSError) as exc:
                if not failing:
                    logger.warning("runstream-redis: cannot renew this process's run slots and "
                                   "reader leases at %s (%s); they expire in %g s unless Redis "
                                   "comes back", self.where, type(exc).__name__, self.lease)
                failing = True
            else:
                failing = False

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
