"""``memory`` run log store: bounded, in this process only."""

from __future__ import annotations

from collections import OrderedDict

from pydantic import Field, PrivateAttr

from ._errors import RunIdError, RunNotFoundError
from ._runlog import RunLog, RunStatus, RunSummary
from ._store import RunLogStore


class MemoryStore(RunLogStore):
    """Keeps run logs in memory, at most ``max_runs`` of them (the oldest ended runs go first)."""

    max_runs: int = Field(default=10_000, ge=1,
                          description="Runs kept; beyond it the oldest ended runs are dropped.")
    _runs: OrderedDict[str, RunLog] = PrivateAttr(default_factory=OrderedDict)

    async def create(self, run_log: RunLog) -> None:
        if run_log.run_id in self._runs:
            raise RunIdError(f"run id '{run_log.run_id}' is already used; pick another or omit it")
        self._runs[run_log.run_id] = run_log.model_copy(deep=True)
        self._evict()

    async def save(self, run_log: RunLog) -> None:
        self._runs[run_log.run_id] = run_log.model_copy(deep=True)

    async def get(self, run_id: str) -> RunLog:
        try:
            return self._runs[run_id].model_copy(deep=True)
        except KeyError:
            raise RunNotFoundError(f"no run '{run_id}' in the memory run log store") from None

    async def list_runs(self, *, limit: int = 50, status: RunStatus | None = None
                        ) -> list[RunSummary]:
        out: list[RunSummary] = []
        for log in reversed(self._runs.values()):
            if status is None or log.status == status:
                out.append(RunSummary(run_id=log.run_id, pipeline=log.pipeline,
                                      status=log.status, started=log.started, ended=log.ended))
                if len(out) >= limit:
                    break
        return out

    def _evict(self) -> None:
        runs = self._runs
        if len(runs) <= self.max_runs:
            return
        for run_id in [k for k, v in runs.items() if v.status != "running"]:
            del runs[run_id]
            if len(runs) <= self.max_runs:
                return
        while len(runs) > self.max_runs:  # all running: drop the oldest anyway, memory is bounded
            runs.popitem(last=False)
