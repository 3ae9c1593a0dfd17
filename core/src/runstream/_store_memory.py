"""``memory`` run log store: bounded, in this process only."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from pydantic import Field, PrivateAttr

from ._errors import RunIdError, RunNotFoundError
from ._runlog import RunLog, RunStatus, RunSummary
from ._store import RunLogStore, dump_run_log


class MemoryStore(RunLogStore):
    """Keeps run logs in memory, at most ``max_runs`` of them (the oldest ended runs go first)."""

    max_runs: int = Field(default=10_000, ge=1,
                          description="Runs kept; beyond it the oldest ended runs are dropped.")
    # Each run is kept as its summary plus its log serialised to JSON: a snapshot that later
    # changes to the live RunLog cannot reach, and far cheaper to take than a deep copy of the
    # models (pydantic's JSON encoder is native code; a run of 1,000 steps copies in ~1 ms).
    _runs: OrderedDict[str, tuple[RunSummary, str]] = PrivateAttr(default_factory=OrderedDict)
    _leases: dict[str, datetime] = PrivateAttr(default_factory=dict)

    async def renew_lease(self, process: str, until: datetime) -> bool:
        self._leases[process] = until
        return True

    async def leases(self) -> dict[str, datetime] | None:
        return dict(self._leases)

    def _put(self, run_log: RunLog) -> None:
        summary = RunSummary(run_id=run_log.run_id, pipeline=run_log.pipeline,
                             status=run_log.status, started=run_log.started, ended=run_log.ended)
        self._runs[run_log.run_id] = (summary, dump_run_log(run_log))

    async def create(self, run_log: RunLog) -> None:
        if run_log.run_id in self._runs:
            raise RunIdError(f"run id '{run_log.run_id}' is already used; pick another or omit it")
        self._put(run_log)
        self._evict()

    async def save(self, run_log: RunLog) -> None:
        self._put(run_log)

    async def get(self, run_id: str) -> RunLog:
        try:
            return RunLog.model_validate_json(self._runs[run_id][1])
        except KeyError:
            raise RunNotFoundError(f"no run '{run_id}' in the memory run log store") from None

    async def list_runs(self, *, limit: int = 50, status: RunStatus | None = None
                        ) -> list[RunSummary]:
        out: list[RunSummary] = []
        for summary, _ in reversed(self._runs.values()):
            if status is None or summary.status == status:
                out.append(summary.model_copy())
                if len(out) >= limit:
                    break
        return out

    def _evict(self) -> None:
        runs = self._runs
        if len(runs) <= self.max_runs:
            return
        for run_id in [k for k, (s, _) in runs.items() if s.status not in ("running", "queued")]:
            del runs[run_id]
            if len(runs) <= self.max_runs:
                return
        while len(runs) > self.max_runs:  # all running: drop the oldest anyway, memory is bounded
            runs.popitem(last=False)
