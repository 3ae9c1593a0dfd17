"""The taskiq broker of the ``taskiq`` executor: taskiq-redis's ``ListQueueBroker`` whose
workers take messages with an acknowledgement.

A web process kicks messages as ``ListQueueBroker`` does (``LPUSH`` on the queue). A worker
(``taken_key`` set) takes each with ``BLMOVE`` from the queue to its own ``taken`` list, in one
atomic step, instead of ``BRPOP``: a message is never only in a worker's memory. It leaves the
list when its run ends on that worker (``DONE``, see ``_scripts``); a worker that dies leaves it
there, where a live worker's reaper finds it and puts the run back on the queue or ends it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from taskiq_redis import ListQueueBroker

__all__ = ["QueueBroker", "message_run_id"]

logger = logging.getLogger("runstream.taskiq")


def message_run_id(message: bytes | str) -> str | None:
    """The run id of a queued ``runstream.run`` message (its first argument's), or None."""
    try:
        run_id = json.loads(message)["args"][0]["run_id"]
    except (ValueError, LookupError, TypeError):
        return None
    return run_id if isinstance(run_id, str) else None


class QueueBroker(ListQueueBroker):
    """``ListQueueBroker`` whose ``listen`` moves each message to ``taken_key`` (a worker's)."""

    #: The worker's list of taken, unfinished messages; None: listen as ``ListQueueBroker``.
    taken_key: str | None = None

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        #: Messages taken and not acknowledged yet, by run id (what ``DONE`` removes).
        self.taken: dict[str, bytes] = {}

    async def listen(self) -> AsyncGenerator[bytes, None]:
        taken_key = self.taken_key
        if taken_key is None:
            async for message in super().listen():
                yield message
            return
        while True:
            try:
                async with Redis(connection_pool=self.connection_pool) as redis:
                    got = await redis.blmove(self.queue_name, taken_key, 0, "RIGHT", "LEFT")
            except RedisConnectionError as exc:
                logger.warning("the taskiq queue's Redis is unreachable (%s); retrying", exc)
                await asyncio.sleep(1.0)  # a timer: back off before reconnecting
                continue
            if got is None:
                continue
            message = got.encode() if isinstance(got, str) else got
            run_id = message_run_id(message)
            if run_id is None:
                logger.error("dropped a message of the queue that is not a runstream run")
                async with Redis(connection_pool=self.connection_pool) as redis:
                    await redis.lrem(taken_key, 1, message)  # type: ignore[arg-type]
                continue
            self.taken[run_id] = message
            yield message
