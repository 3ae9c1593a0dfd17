"""``redis`` event log: runs' records in Redis Streams, shared by every process that uses it.

Keys, for a ``key_prefix`` ``P`` (default ``runstream:``):

- ``P run:{id}`` (a hash): ``status``, ``pipeline``, ``owner``, ``meta`` (JSON), ``cancel``
  (the reason, once a cancel was asked);
- ``P run:{id}:events`` (a stream): the records, one entry each (see ``_codec``);
- ``P run:{id}:readers`` (a sorted set): one lease per reading client;
- ``P slots`` (a sorted set): one lease per run holding a ``max_concurrent_runs`` slot;
- ``P drivers`` (a sorted set): one lease per running run, held by the processes writing it;
- the pub/sub channel ``P cancel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from redis.exceptions import RedisError
from runstream import (
    RUN_ID_PATTERN,
    CancelHandler,
    EventLogError,
    LoggedRun,
    RunIdError,
    RunNotFoundError,
)

from ._append import Batch
from ._bounds import Written
from ._cancel import CancelListener
from ._clients import Clients, errors
from ._codec import RECORD, entry_id, parse_entries, seq_of, text_of
from ._leases import Leases
from ._options import RedisOptions
from ._tail import READ_COUNT, Tail
from ._url import mask_url

if TYPE_CHECKING:
    from runstream import EventRecord

__all__ = ["RedisEventLog"]

#: Run ids have no ``:``, so no run's keys can be another's; an id that is not one names no run.
_valid_id = re.compile(RUN_ID_PATTERN).match


class RedisEventLog(RedisOptions):
    """Keeps runs' records in Redis: any process that shares the Redis replays, follows and
    cancels any run, and ``max_concurrent_runs`` counts the runs of all of them.

    See docs/event-log.md (section ``redis``) for what it guarantees and what survives what.
    """

    shared: ClassVar[bool] = True

    #: Not pydantic private attributes: plain ones in the instance's ``__dict__`` (set by
    #: ``model_post_init``), read on every append without a ``__getattr__`` call each.
    _clients: ClassVar[Clients | None]
    _written: ClassVar[dict[str, Written]]
    _listener: ClassVar[CancelListener | None]
    _leases: ClassVar[Leases | None]
    _tail: ClassVar[Tail | None]
    _tokens: ClassVar[Iterator[int]]
    _instance: ClassVar[str]

    def model_post_init(self, context: object, /) -> None:
        for name, value in (("_clients", None), ("_written", {}), ("_listener", None),
                            ("_leases", None), ("_tail", None), ("_tokens", itertools.count()),
                            ("_instance", f"{os.getpid()}-{uuid.uuid4().hex[:8]}")):
            object.__setattr__(self, name, value)

    # -- connections -----------------------------------------------------------------------
    def _connect(self) -> Clients:
        clients = self._clients
        if clients is None:
            clients = Clients(
                self.url, connect_timeout=self.connect_timeout,
                socket_timeout=self.socket_timeout, max_connections=self.max_connections,
                write_queue=self.write_queue, write_queue_bytes=self.write_queue_bytes)
            object.__setattr__(self, "_clients", clients)
            object.__setattr__(self, "_tail", Tail(self.url, clients, clients.pubsub,
                                                   self._drivers, block=self.block))
            where = mask_url(self.url)
            listener = CancelListener(clients.commands, f"{self.key_prefix}cancel", where,
                                      retry_delay=min(1.0, self.connect_timeout))
            object.__setattr__(self, "_listener", listener)
            object.__setattr__(self, "_leases", Leases(self.slot_lease, self._renew, where))
        return clients

    async def _run_script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """A script that only reads, on the commands pool."""
        return await self._connect().script(name, keys, args)

    async def _write(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """A script that writes, through the writer (one round trip for many callers)."""
        writer = self._connect().writer
        await writer.room()
        return await writer.script(name, keys, args)

    async def _write_command(self, *args: Any) -> Any:
        writer = self._connect().writer
        await writer.room()
        return await writer.call(*args)

    def _errors(self, doing: str) -> contextlib.AbstractContextManager[None]:
        return errors(self.url, doing)

    async def start(self) -> None:
        client = self._connect().commands
        with self._errors("connect (check event_log.url and that Redis is running)"):
            await client.ping()

    def _meta(self, run_id: str) -> str:
        return f"{self.key_prefix}run:{run_id}"

    @property
    def _drivers(self) -> str:
        return f"{self.key_prefix}drivers"

    def _keys(self, run_id: str) -> list[str]:
        meta = self._meta(run_id)
        return [meta, f"{meta}:events", f"{meta}:readers"]

    @staticmethod
    def _ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))

    def _bounds(self, kept_from: int) -> Written:
        return Written(self.max_events, self.max_run_bytes, kept_from)

    # -- writing ---------------------------------------------------------------------------
    async def create(self, run_id: str, *, pipeline: str, owner: str | None,
                     meta: Mapping[str, Any] | None = None) -> None:
        if not _valid_id(run_id):
            raise RunIdError(f"run id {run_id!r} is not valid: it must match {RUN_ID_PATTERN}")
        self._connect()
        listener = self._listener
        if listener is not None and listener.handlers:
            # Cancel signals sent once create() has returned reach this process's handlers.
            listener.start()
            await listener.wait_ready(self.connect_timeout)
        with self._errors(f"create run '{run_id}'"):
            created = await self._write("CREATE", [*self._keys(run_id), self._drivers], [
                pipeline, "0" if owner is None else "1", owner or "",
                self._ms(self.running_expiry), run_id, self._ms(self.slot_lease),
                json.dumps(meta, separators=(",", ":")) if meta else ""])
        if not created:
            raise RunIdError(f"run id '{run_id}' is already used by a run in the event log; "
                             "pick another or omit it")
        self._written[run_id] = self._bounds(1)
        if self._leases is not None:
            self._leases.add(self._drivers, run_id)

    async def append(self, run_id: str, records: Sequence[EventRecord]) -> None:
        batch = Batch.of(self, run_id, records)
        if batch is None:
            return
        try:
            with self._errors(f"append to run '{run_id}'"):
                appended = await self._write("APPEND", batch.keys, batch.args)
        except EventLogError:
            self._written.pop(run_id, None)  # what Redis holds is unknown now
            raise
        batch.appended(appended)

    def append_soon(self, run_id: str, records: Sequence[EventRecord],
                    done: Callable[[BaseException | None], object]) -> None:
        # Queued for the writer with a callback (no task, no future), when it has room.
        batch = Batch.of(self, run_id, records) if self._connect().writer.has_room else None
        if batch is None:
            super().append_soon(run_id, records, done)
        else:
            batch.send(done)

    async def end(self, run_id: str, status: str) -> None:
        if not _valid_id(run_id):
            return
        self._written.pop(run_id, None)
        if self._leases is not None:
            self._leases.discard(f"{self.key_prefix}slots", run_id)
            self._leases.discard(self._drivers, run_id)
        with self._errors(f"end run '{run_id}'"):
            await self._write(
                "END", [*self._keys(run_id), f"{self.key_prefix}slots", self._drivers],
                [status, round(self.ttl * 1000), run_id])

    # -- reading ---------------------------------------------------------------------------
    async def read(self, run_id: str, after: int = 0, *, follow: bool = True
                   ) -> AsyncIterator[list[EventRecord]]:
        if not _valid_id(run_id):
            raise RunNotFoundError(f"no run {run_id!r} in the event log")
        clients = self._connect()
        client = clients.commands
        meta, events, _ = self._keys(run_id)
        cursor = entry_id(max(0, after))
        doing = f"read run '{run_id}'"
        with self._errors(doing):
            async with client.pipeline(transaction=False) as pipe:
                pipe.exists(meta)
                pipe.xread({events: cursor}, count=READ_COUNT)
                exists, got = await pipe.execute()
        if not exists:
            raise RunNotFoundError(f"no run '{run_id}' in the event log")
        if not follow:
            while got:
                batch, cursor, done = parse_entries(got[0][1])
                if batch:
                    yield batch
                if done:
                    return
                with self._errors(doing):
                    got = await client.xread({events: cursor}, count=READ_COUNT)
            return
        batch, pos = [], max(0, after)
        if got:
            batch, cursor, done = parse_entries(got[0][1])
            if done:
                if batch:
                    yield batch
                return
            pos = seq_of(cursor)
        # The tail follows it from here, subscribed before this batch is handed over.
        tail = self._tail
        assert tail is not None
        reader = tail.join(run_id, events, pos)
        try:
            if batch:
                yield batch
            async for batch in tail.records(reader, meta, events):
                yield batch
        finally:
            tail.leave(reader)

    async def get_run(self, run_id: str) -> LoggedRun | None:
        if not _valid_id(run_id):
            return None
        meta, events, _ = self._keys(run_id)
        with self._errors(f"read run '{run_id}'"):
            async with self._connect().commands.pipeline(transaction=False) as pipe:
                pipe.hgetall(meta)
                pipe.xrange(events, count=1)
                pipe.xrevrange(events, count=1)
                fields, first, last = await pipe.execute()
        if not fields:
            return None
        last_seq = seq_of(last[0][0]) if last else 0
        first_seq = seq_of(first[0][0]) if first and RECORD in first[0][1] else last_seq + 1
        owner = fields.get(b"owner")
        return LoggedRun(run_id, text_of(fields.get(b"pipeline", b"")),
                         None if owner is None else text_of(owner),
                         text_of(fields.get(b"status", b"running")), last_seq, first_seq,
                         json.loads(fields[b"meta"]) if b"meta" in fields else {})

    # -- cancel ----------------------------------------------------------------------------
    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        if not _valid_id(run_id):
            return False
        message = json.dumps([run_id, reason])
        with self._errors(f"cancel run '{run_id}'"):
            sent = await self._write("CANCEL", [self._meta(run_id)],
                                          [f"{self.key_prefix}cancel", reason, message])
        return bool(sent)

    async def cancel_reason(self, run_id: str) -> str | None:
        """The reason of the cancel asked for the run, if one was (for a driver that started
        listening after it was sent, or while Redis was unreachable), else None."""
        if not _valid_id(run_id):
            return None
        with self._errors(f"read run '{run_id}'"):
            reason = await self._connect().commands.hget(self._meta(run_id), "cancel")
        return None if reason is None else text_of(reason)

    def subscribe_cancel(self, handler: CancelHandler) -> Callable[[], None]:
        self._connect()
        listener = self._listener
        assert listener is not None
        listener.handlers.append(handler)
        with contextlib.suppress(RuntimeError):  # no loop yet: create() starts it
            listener.start()

        def unsubscribe() -> None:
            if handler in listener.handlers:
                listener.handlers.remove(handler)

        return unsubscribe

    # -- slots and readers -----------------------------------------------------------------
    async def acquire_slot(self, run_id: str, limit: int) -> bool:
        slots = f"{self.key_prefix}slots"
        with self._errors("take a run slot"):
            taken = await self._write("ACQUIRE", [slots],
                                           [run_id, limit, self._ms(self.slot_lease)])
        if taken and self._leases is not None:
            self._leases.add(slots, run_id)
        return bool(taken)

    async def release_slot(self, run_id: str) -> None:
        slots = f"{self.key_prefix}slots"
        if self._leases is not None:
            self._leases.discard(slots, run_id)
        with self._errors("release a run slot"):
            await self._write_command("ZREM", slots, run_id)

    async def slots_in_use(self) -> int:
        with self._errors("count run slots"):
            return int(await self._run_script("COUNT", [f"{self.key_prefix}slots"], []))

    async def add_reader(self, run_id: str) -> None:
        if not _valid_id(run_id):
            return
        meta, _, readers = self._keys(run_id)
        member = f"{self._instance}:{next(self._tokens)}"
        with self._errors(f"count a reader of run '{run_id}'"):
            added = await self._write("ADD_READER", [readers, meta],
                                           [member, self._ms(self.slot_lease)])
        if added and self._leases is not None:
            self._leases.add(readers, member)

    async def remove_reader(self, run_id: str) -> None:
        if not _valid_id(run_id):
            return
        readers = self._keys(run_id)[2]
        leases = self._leases
        members = [] if leases is None else leases.members(readers)
        if not members or leases is None:  # only this process's own readers are its to remove
            return
        leases.discard(readers, members[-1])
        with self._errors(f"count a reader of run '{run_id}'"):
            await self._write_command("ZREM", readers, members[-1])

    async def readers(self, run_id: str) -> int:
        if not _valid_id(run_id):
            return 0
        with self._errors(f"count the readers of run '{run_id}'"):
            return int(await self._run_script("COUNT", [self._keys(run_id)[2]], []))

    async def _renew(self, leases: list[tuple[str, str]]) -> None:
        await self._write("RENEW", [key for key, _ in leases],
                               [self._ms(self.slot_lease), *(m for _, m in leases)])

    async def close(self) -> None:
        clients = self._clients
        object.__setattr__(self, "_clients", None)
        if clients is not None:
            await clients.writer.close()  # what is queued goes out first
        if self._listener is not None:
            await self._listener.close()
        if self._tail is not None:
            await self._tail.close()
        leases = self._leases
        if leases is not None:
            await leases.close()
        if clients is not None and leases is not None and leases.held:
            # A clean stop frees this process's slots and readers now, not a lease later.
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(self.socket_timeout):
                    async with clients.commands.pipeline(transaction=False) as pipe:
                        for key, member in leases.held:
                            pipe.zrem(key, member)
                        await pipe.execute()
            leases.held.clear()
        if clients is not None:
            await clients.aclose()

