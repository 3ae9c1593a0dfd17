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
from taskiq.message import BrokerMessage
from taskiq_redis import ListQueueBroker

from ._scripts import SUBMIT

__all__ = ["QueueBroker", "Refused", "message_run_id"]

logger = logging.getLogger("runstream.taskiq")


def message_run_id(message: bytes | str) -> str | None:
    """The run id of a queued ``runstream.run`` message (its first argument's), or None."""
    try:
        run_id = json.loads(message)["args"][0]["run_id"]
    except (ValueError, LookupError, TypeError):
        return None
    return run_id if isinstance(run_id, str) else None


class Refused(Exception):
    """``kick`` did not queue the message: no live worker (``workers`` 0) or a full queue."""

    def __init__(self, workers: int, queued: int) -> None:
        super().__init__(workers, queued)
        self.workers = workers
        self.queued = queued


class QueueBroker(ListQueueBroker):
    """``ListQueueBroker`` whose ``listen`` moves each message to ``taken_key`` (a worker's),
    and whose ``kick`` checks the queue's admission (``admission``) in the same step."""

    #: The worker's list of taken, unfinished messages; None: listen as ``ListQueueBroker``.
    taken_key: str | None = None
    #: The workers' heartbeat key and ``max_queued``: ``kick`` queues a message only if a
    #: worker is alive and the queue is not full, else raises :class:`Refused`.
    admission: tuple[str, int] | None = None

    async def kick(self, message: BrokerMessage) -> None:
        if self.admission is None:
            await super().kick(message)
            return
        workers_key, max_queued = self.admission
        queue = message.labels.get("queue_name") or self.queue_name
        async with Redis(connection_pool=self.connection_pool) as redis:
            verdict, queued = await redis.eval(
                SUBMIT, 2, workers_key, queue, max_queued, message.message)
        if int(verdict) != 0:
            raise Refused(0 if int(verdict) == 1 else 1, int(queued))

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
