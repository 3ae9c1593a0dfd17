"""Cancel signals across processes: one pub/sub subscriber per log instance.

``cancel()`` publishes ``[run_id, reason]`` on the channel ``{prefix}cancel`` (and sets the run's
``cancel`` field, for a driver that was not listening then). Every instance that has a cancel
handler subscribes once, in one task, and calls the handlers in the event loop; each ignores the
runs it does not drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from runstream import CancelHandler

__all__ = ["CancelListener"]

logger = logging.getLogger("runstream.redis")


class CancelListener:
    """Subscribes to the cancel channel in a task of its own, reconnecting after a failure."""

    def __init__(self, client: Redis, channel: str, where: str, retry_delay: float) -> None:
        self.client = client
        self.channel = channel
        self.where = where  # the masked URL, for log lines
        self.retry_delay = retry_delay
        self.handlers: list[CancelHandler] = []
        #: Set while the subscription is in place (signals published now are heard).
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="runstream-redis cancel listener")

    async def wait_ready(self, within: float) -> bool:
        """Wait until subscribed (at most ``within`` s): False if Redis cannot be reached."""
        if self._task is None:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), within)
        return self.ready.is_set()

    def dispatch(self, payload: bytes) -> None:
        try:
            run_id, reason = json.loads(payload)
        except (ValueError, TypeError):
            logger.warning("runstream-redis: ignored a malformed cancel signal on %s",
                           self.channel)
            return
        for handler in list(self.handlers):
            try:
                handler(str(run_id), str(reason))
            except Exception:  # one handler's bug must not deafen the others
                logger.exception("runstream-redis: a cancel handler failed for run %s", run_id)

    async def _run(self) -> None:
        failed = False
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.ready.set()
                if failed:
                    logger.warning("runstream-redis: listening for cancel signals again on %s",
                                   self.where)
                    failed = False
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.dispatch(message["data"])
            except (RedisError, OSError) as exc:
                self.ready.clear()
                if not failed:
                    logger.warning("runstream-redis: cancel signals from other processes are not "
                                   "heard while Redis at %s is unreachable (%s); retrying",
                                   self.where, type(exc).__name__)
                    failed = True
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(self.retry_delay)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
