"""One append of a run's records: the ``APPEND`` script's keys and arguments, what its reply
means for the run's bounds, and how it goes out without a task (``append_soon``)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from runstream import RUN_ID_PATTERN

from ._codec import encode

if TYPE_CHECKING:
    from runstream import EventRecord

    from ._bounds import Written

__all__ = ["Batch"]

#: The ``RedisEventLog`` (``_log``) whose append this is: typed loosely, as ``_log`` imports
#: this module (no import cycle between a plugin's modules, tests/test_layers.py).
Log = Any

_valid_id = re.compile(RUN_ID_PATTERN).match


class Batch:
    """The ``APPEND`` of a batch of one run's records (see ``_scripts.APPEND``)."""

    __slots__ = ("adopted", "args", "done", "keys", "log", "run_id", "state")

    def __init__(self, log: Log, run_id: str, keys: list[str], args: list[Any],
                 state: Written, adopted: bool) -> None:
        self.log = log
        self.run_id = run_id
        self.keys = keys
        self.args = args
        #: The run's bounds, with the batch counted.
        self.state = state
        #: Whether the run is new to this process (another process created it: a worker's).
        self.adopted = adopted
        self.done: Callable[[BaseException | None], object] | None = None

    @classmethod
    def of(cls, log: Log, run_id: str, records: Sequence[EventRecord]
           ) -> Batch | None:
        """The append of ``records`` (None: nothing to append)."""
        if not records:
            return None
        known = log._written.get(run_id)
        meta, events, _ = log._keys(run_id)
        keys = [events]
        if known is None:
            # A run another process created (a worker's first append): only while it is
            # running, which the script checks in the same round trip.
            if not _valid_id(run_id):
                return None
            state = log._bounds(records[0][0])
            keys.append(meta)
        else:
            state = known
        values = [encode(record) for record in records]
        trim = state.add(records, values)
        first = records[0][0]
        contiguous = records[-1][0] - first == len(records) - 1
        args: list[Any] = [log.max_events, "" if trim is None else trim, "",
                           first if contiguous else "",
                           "" if contiguous else " ".join(f"{r[0]}-0" for r in records),
                           b"\n".join(values)]
        if not state.expiry_set:
            args[2] = log._ms(log.running_expiry)
        return cls(log, run_id, keys, args, state, known is None)

    def appended(self, reply: Any) -> None:
        """Redis took the batch (``reply``: the script's)."""
        log = self.log
        if self.adopted:
            if reply == -1:
                return  # not running (ended, or unknown): nothing was appended
            log._written[self.run_id] = self.state
            if log._leases is not None:  # it drives the run too (e.g. a worker)
                log._leases.add(log._drivers, self.run_id)
        self.state.expiry_set = True

    def send(self, done: Callable[[BaseException | None], object]) -> None:
        """Queue the batch for the log's writer: ``done(None)`` once Redis took it, or
        ``done(EventLogError)``, from the writer's task."""
        self.done = done
        try:
            self.log._connect().writer.script_then("APPEND", self.keys, self.args, self._then)
        except RedisError as exc:  # the log is closed
            asyncio.get_running_loop().call_soon(self._then, None, exc)

    def _then(self, reply: Any, error: BaseException | None) -> None:
        done = self.done
        assert done is not None
        if error is None:
            self.appended(reply)
            done(None)
            return
        log = self.log
        log._written.pop(self.run_id, None)  # what Redis holds is unknown now
        try:
            with log._errors(f"append to run '{self.run_id}'"):
                raise error
        except BaseException as raised:  # as append() would have raised it
            done(raised)
