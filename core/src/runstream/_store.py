"""The run log store interface."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from ._errors import RunNotFoundError
from ._hotpath import fast_private_attributes
from ._json import model_json

if TYPE_CHECKING:
    from datetime import datetime

    from ._runlog import RunLog, RunStatus, RunSummary

__all__ = ["RunLogStore"]


def dump_run_log(run_log: RunLog) -> str:
    # Parameters are user data: anything JSON or UTF-8 cannot hold is stored as its repr (or
    # U+FFFD for a lone surrogate), not lost silently and not a crash at the end of a run.
    return model_json(run_log)


class RunLogStore(BaseModel):
    """Base class of run log stores. Fields are the options of ``run_log_store:`` in the config.

    One store instance serves every run of a :class:`runstream.Runtime`, concurrently; its methods
    must be safe to call from many runs at once.
    """

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # A subclass's private attributes (``_x = PrivateAttr()``), read without pydantic's
        # __getattr__ (see _hotpath).
        fast_private_attributes(cls)

    model_config = ConfigDict(extra="forbid", defer_build=True, allow_inf_nan=False)

    async def create(self, run_log: RunLog) -> None:
        """Record a new run; raise :class:`runstream.RunIdError` if the id is already used."""
        raise NotImplementedError

    def create_soon(self, run_log: RunLog) -> asyncio.Future[None]:
        """:meth:`create`, started now: a future of its outcome, which runstream awaits, or not
        (it never cancels it). A run records its start so, and goes on if the store is slower
        than ``limits.store_timeout``. The default runs :meth:`create` in a task; a store whose
        writes already complete a future (the ``sqlite`` store's thread) returns that one, a
        task less per run."""
        return asyncio.ensure_future(self.create(run_log))

    async def save(self, run_log: RunLog) -> None:
        """Replace the stored record of an existing run."""
        raise NotImplementedError

    async def save_if(self, run_log: RunLog, *, status: RunStatus) -> bool:
        """Replace the stored record of ``run_log``'s run only if its stored status is still
        ``status``; return whether it did. Runtimes that find a dead process's run use it to
        mark the run ``abandoned``: when several of them look at once (workers starting
        together), one marks it, and a run that ended meanwhile keeps its real end.

        The default reads, compares and saves: enough for a store that lives in one process.
        A store shared by processes overrides it with one atomic write (the ``sqlite`` store:
        ``UPDATE ... WHERE status = ?``)."""
        try:
            stored = await self.get(run_log.run_id)
        except RunNotFoundError:
            return False
        if stored.status != status:
            return False
        await self.save(run_log)
        return True

    async def get(self, run_id: str) -> RunLog:
        """The stored record; raise :class:`runstream.RunNotFoundError` if there is none."""
        raise NotImplementedError

    async def list_runs(self, *, limit: int = 50, status: RunStatus | None = None
                        ) -> list[RunSummary]:
        """The newest ``limit`` runs, newest first, optionally only those with ``status``."""
        raise NotImplementedError

    async def renew_lease(self, process: str, until: datetime) -> bool:
        """Record that ``process`` (``host:pid:start``) vouches for its running runs until
        ``until``. Return False if this store keeps no leases (the default): runs of dead
        processes are then found by their pid alone, on their own host."""
        return False

    async def leases(self) -> dict[str, datetime] | None:
        """Each process's lease end, as renewed with :meth:`renew_lease`; None if this store
        keeps no leases."""
        return None

    async def close(self) -> None:
        """Release connections and threads. The store is not used afterwards."""

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **self.model_dump()}
