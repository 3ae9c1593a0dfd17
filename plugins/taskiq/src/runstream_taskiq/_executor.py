"""The ``taskiq`` executor: whole runs on a pool of worker processes, through a taskiq queue.

In a web process it submits runs (``kiq`` of the ``runstream.run`` task on a taskiq
``ListQueueBroker`` in Redis) and tells whether their workers are alive; in ``runstream worker``
it is the worker (see ``_pool``). Runs' events never go through taskiq: the worker appends them
to the shared event log, where the web processes read them.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr, field_validator
from redis.asyncio import Redis
from redis.exceptions import RedisError
from runstream import (
    ConfigError,
    EventLog,
    ExecutorUnavailableError,
    LocalExecutor,
    RunLogStore,
    Submission,
)
from runstream_redis import mask_url
from taskiq.exceptions import SendTaskError
from taskiq.kicker import AsyncKicker

from ._broker import QueueBroker, Refused
from ._scripts import CLAIM, STATE, TASK_NAME

__all__ = ["TaskiqExecutor"]

#: Stores that live in one process only: workers could not record runs there.
_PROCESS_STORES = {"MemoryStore"}


class TaskiqExecutor(LocalExecutor):
    """``executor: {type: taskiq, broker: "redis://127.0.0.1:6379/1"}``: runs go to the workers
    (``runstream worker``) through a taskiq queue in Redis; their events come back through the
    shared event log. Needs a shared event log (``redis``) and a run log store every worker and
    web process reaches (``postgres``; ``sqlite`` on one machine). See docs/deploy.md."""

    remote: ClassVar[bool] = True

    broker: str = Field(default="redis://127.0.0.1:6379/1", repr=False,
                        description="The Redis of the taskiq queue (`redis://`, `rediss://`).")
    queue_name: str = Field(default="runstream", min_length=1,
                            description="The Redis list the queue is.")
    key_prefix: str = Field(default="runstream-taskiq:",
                            description="Prefix of the keys of run leases and worker heartbeats.")
    lease: float = Field(
        default=10.0, ge=0.3, le=3600,
        description="Seconds a run's lease lasts unless its worker renews it (every third of "
                    "it): a killed worker's runs end `failed` (`WorkerLost`) within this time.")
    max_queued: int = Field(
        default=1000, ge=1,
        description="Runs waiting in the queue at most; past it new runs are refused (HTTP "
                    "503 with Retry-After).")
    connect_timeout: float = Field(default=2.0, gt=0, le=60,
                                   description="Seconds to connect to Redis.")

    _redis: Redis | None = PrivateAttr(default=None)
    _broker: QueueBroker | None = PrivateAttr(default=None)
    _kicker: AsyncKicker[[dict[str, Any]], None] | None = PrivateAttr(default=None)

    @field_validator("broker")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        if url.partition("://")[0] not in ("redis", "rediss", "unix") or "://" not in url:
            raise ValueError(f"{mask_url(url)!r} is not a Redis URL: use redis://host:port/db")
        return url

    def __repr_args__(self) -> Any:
        yield "broker", mask_url(self.broker)
        yield from super().__repr_args__()

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **self.model_dump(), "broker": mask_url(self.broker)}

    @property
    def where(self) -> str:
        return mask_url(self.broker)

    # -- services ----------------------------------------------------------------------------
    def check_services(self, event_log: EventLog, store: RunLogStore) -> None:
        if not event_log.shared:
            raise ConfigError(
                "executor 'taskiq' needs a shared event log (workers append the runs' events "
                "there and web processes read them): set `event_log: {type: redis, url: ...}` "
                f"(runstream-redis); the config has '{type(event_log).__name__}'")
        if type(store).__name__ in _PROCESS_STORES:
            raise ConfigError(
                "executor 'taskiq' needs a run log store that workers and web processes share: "
                "set `run_log_store: {type: postgres, dsn: ...}` (runstream-postgres), or "
                "`sqlite` on one machine; the config has the in-process 'memory' store")

    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = Redis.from_url(self.broker, socket_connect_timeout=self.connect_timeout,
                                         socket_timeout=max(5.0, self.connect_timeout))
        return self._redis

    def taskiq_broker(self) -> QueueBroker:
        if self._broker is None:
            # No read timeout: a worker's BRPOP waits for work as long as it takes (redis-py 8
            # would otherwise cut it after 5 s, which kills taskiq's listener).
            self._broker = QueueBroker(self.broker, queue_name=self.queue_name,
                                       socket_connect_timeout=self.connect_timeout,
                                       socket_timeout=None)
        return self._broker

    def key(self, name: str) -> str:
        return f"{self.key_prefix}{name}"

    def unavailable(self, exc: BaseException) -> ExecutorUnavailableError:
        return ExecutorUnavailableError(
            f"the taskiq queue's Redis at {self.where} is unavailable "
            f"({type(exc).__name__}); retry shortly")

    # -- the web side --------------------------------------------------------------------------
    async def refusal(self) -> str | None:
        try:
            workers, queued = await self.redis().eval(
                STATE, 2, self.key("workers"), self.queue_name)
        except (RedisError, OSError) as exc:
            return str(self.unavailable(exc))
        return self._refusal(int(workers), int(queued))

    def _refusal(self, workers: int, queued: int) -> str | None:
        if workers == 0:
            return (f"no live worker for the taskiq executor (queue '{self.queue_name}' at "
                    f"{self.where}): start one with `runstream worker --config ...`")
        if queued >= self.max_queued:
            return (f"the taskiq queue is full ({queued} runs waiting, max_queued "
                    f"{self.max_queued}); retry shortly")
        return None

    async def submit(self, submission: Submission) -> None:
        # The admission (a live worker, room in the queue) is checked by the queueing itself
        # (QueueBroker.kick): one round trip.
        broker = self.taskiq_broker()
        try:
            if self._kicker is None:
                await broker.startup()
                broker.admission = (self.key("workers"), self.max_queued)
                self._kicker = AsyncKicker(task_name=TASK_NAME, broker=broker, labels={})
            try:
                await self._kicker.kiq(submission.to_json())
            except SendTaskError as exc:  # taskiq wraps what the broker raised
                raise exc.__cause__ or exc from None
        except Refused as refused:
            raise ExecutorUnavailableError(
                self._refusal(refused.workers, refused.queued) or "refused") from None
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from None

    async def lost(self, run_id: str) -> str | None:
        try:
            verdict = await self.redis().eval(
                CLAIM, 3, self.key("leases"), self.key("workers"), self.key(f"lost:{run_id}"),
                run_id, round(self.lease * 1000 * 10))
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from None
        if verdict == 1:
            return (f"the worker running the run stopped renewing its lease ({self.lease:g} s): "
                    "it was killed or cut off")
        if verdict == 2:
            return f"no live worker is left to run it (queue '{self.queue_name}')"
        return None

    @property
    def lost_check_interval(self) -> float:
        return self.lease / 3

    # -- the worker side ---------------------------------------------------------------------
    async def serve(self, runtime: Any, run: Any, *, concurrency: int,
                    grace_period: float) -> None:
        from ._pool import WorkerPool

        await WorkerPool(self, runtime, run).serve(concurrency, grace_period)

    async def aclose(self) -> None:
        redis, self._redis = self._redis, None
        if redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await redis.aclose()
        broker, self._broker = self._broker, None
        if broker is not None:
            with contextlib.suppress(RedisError, OSError):
                await broker.shutdown()
            self._kicker = None
