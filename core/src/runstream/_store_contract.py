"""The run log store contract as a test suite: one class, run against every store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ._errors import RunIdError, RunNotFoundError
from ._runlog import RunLog, RunStatus, StepLog
from ._store import RunLogStore

__all__: list[str] = []  # public as runstream.testing.RunLogStoreContract

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _log(run_id: str, minutes: int = 0, status: RunStatus = "running", **fields: Any) -> RunLog:
    fields.setdefault("parameters", {"prompt": f"hi {run_id}", "obj": {"x": [1, 2]}})
    return RunLog(run_id=run_id, pipeline="p", status=status,
                  started=_EPOCH + timedelta(minutes=minutes), **fields)


class RunLogStoreContract:
    """What every run log store does, as pytest tests: subclass it in a test module, name the
    subclass ``Test...`` and give it a ``store`` fixture that yields a new, empty store (and
    closes it afterwards)::

        from runstream.testing import RunLogStoreContract

        class TestMyStore(RunLogStoreContract):
            @pytest.fixture
            async def store(self, tmp_path):
                store = MyStore(path=str(tmp_path / "runs"))
                yield store
                await store.close()

    A store shared by processes also overrides ``store_twin``: a second store object on the
    same data, as another process would open it (by default, ``store`` itself). The tests are
    coroutines: they need pytest-asyncio with ``asyncio_mode = "auto"``.
    """

    @pytest.fixture
    async def store(self) -> AsyncIterator[RunLogStore]:
        """A new, empty store; closed after the test. Subclasses must override it."""
        raise NotImplementedError("define a `store` fixture in your RunLogStoreContract class")
        yield  # pragma: no cover

    @pytest.fixture
    async def store_twin(self, store: RunLogStore) -> AsyncIterator[RunLogStore]:
        """A second store on the same data as ``store``; by default ``store`` itself."""
        yield store

    async def test_create_save_get(self, store: RunLogStore) -> None:
        log = _log("r1")
        await store.create(log)
        assert (await store.get("r1")).status == "running"
        log.status = "completed"
        log.ended = log.started + timedelta(seconds=3)
        log.steps["a"] = StepLog(name="a", status="completed")
        await store.save(log)
        got = await store.get("r1")
        assert got.status == "completed" and got.steps["a"].status == "completed"
        assert got.parameters == {"prompt": "hi r1", "obj": {"x": [1, 2]}}
        assert got.started == log.started and got.ended == log.ended

    async def test_a_used_run_id_is_refused_and_the_first_record_kept(
            self, store: RunLogStore) -> None:
        await store.create(_log("dup"))
        other = _log("dup")
        other.parameters = {"prompt": "second"}
        with pytest.raises(RunIdError, match="already used"):
            await store.create(other)
        assert (await store.get("dup")).parameters["prompt"] == "hi dup"

    async def test_one_of_many_creates_of_one_id_wins(
            self, store: RunLogStore, store_twin: RunLogStore) -> None:
        logs = [_log("same", parameters={"n": i}) for i in range(10)]
        results = await asyncio.gather(
            *((store if i % 2 else store_twin).create(log) for i, log in enumerate(logs)),
            return_exceptions=True)
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, RunIdError) for r in results if r is not None)
        winner = results.index(None)
        assert (await store.get("same")).parameters == {"n": winner}

    async def test_create_soon_records_the_run_and_refuses_a_used_id(
            self, store: RunLogStore) -> None:
        first = store.create_soon(_log("soon"))
        assert isinstance(first, asyncio.Future)  # started: runstream may never await it
        await first
        assert first.done() and first.exception() is None
        assert (await store.get("soon")).parameters["prompt"] == "hi soon"
        with pytest.raises(RunIdError, match="already used"):
            await store.create_soon(_log("soon", parameters={"n": 2}))
        assert (await store.get("soon")).parameters["prompt"] == "hi soon"

    async def test_an_unknown_run_is_not_found(self, store: RunLogStore) -> None:
        for run_id in ("nope", "../etc/passwd", "a\0b", "\ud800"):
            with pytest.raises(RunNotFoundError):
                await store.get(run_id)

    async def test_list_runs_newest_first_with_limit_and_status(
            self, store: RunLogStore) -> None:
        for i in range(30):
            await store.create(_log(f"run-{i:02d}", minutes=i,
                                    status="completed" if i % 2 else "failed"))
        listed = await store.list_runs(limit=5)
        assert [s.run_id for s in listed] == [f"run-{i:02d}" for i in range(29, 24, -1)]
        failed = await store.list_runs(limit=100, status="failed")
        assert [s.run_id for s in failed] == [f"run-{i:02d}" for i in range(28, -1, -2)]
        assert await store.list_runs(status="abandoned") == []
        top = listed[0]
        assert (top.pipeline, top.status, top.started) == ("p", "completed",
                                                          _EPOCH + timedelta(minutes=29))

    async def test_awkward_parameters_survive(self, store: RunLogStore) -> None:
        """What a caller can put in parameters comes back as ``RunLog.to_json`` wrote it: a NUL
        character intact, a lone surrogate as U+FFFD, a value JSON cannot hold as its repr."""
        log = _log("odd", parameters={"nul": "a\0b", "surrogate": "x\ud800y", "emoji": "🦜",
                                      "long": "z" * 100_000, "thing": object()})
        log.warnings.append("a\0warning")
        await store.create(log)
        got = await store.get("odd")
        assert got.parameters["nul"] == "a\0b" and got.parameters["surrogate"] == "x\ufffdy"
        assert got.parameters["emoji"] == "🦜" and len(got.parameters["long"]) == 100_000
        assert got.parameters["thing"].startswith("<object object")
        assert got.warnings == ["a\0warning"]

    async def test_save_if_replaces_only_the_expected_status(
            self, store: RunLogStore) -> None:
        log = _log("cas")
        await store.create(log)
        log.status = "completed"
        await store.save(log)
        late = _log("cas", status="abandoned")
        assert await store.save_if(late, status="running") is False
        assert (await store.get("cas")).status == "completed"
        assert await store.save_if(_log("absent", status="abandoned"), status="running") is False
        await store.create(_log("cas-2"))
        assert await store.save_if(_log("cas-2", status="abandoned"), status="running") is True
        assert (await store.get("cas-2")).status == "abandoned"

    async def test_one_of_several_concurrent_save_ifs_wins(
            self, store: RunLogStore, store_twin: RunLogStore) -> None:
        await store.create(_log("contested"))
        markers = [_log("contested", status="abandoned", warnings=[f"by {i}"]) for i in range(6)]
        won = await asyncio.gather(*((store if i % 2 else store_twin).save_if(
            m, status="running") for i, m in enumerate(markers)))
        assert won.count(True) == 1
        assert (await store.get("contested")).warnings == [f"by {won.index(True)}"]

    async def test_leases(self, store: RunLogStore, store_twin: RunLogStore) -> None:
        until = datetime.now(UTC) + timedelta(seconds=30)
        if not await store.renew_lease("host-a:1:1", until):
            assert await store.leases() is None  # a store without leases says so
            return
        await store_twin.renew_lease("host-b:2:2", until - timedelta(seconds=60))
        await store.renew_lease("host-a:1:1", until + timedelta(seconds=5))  # renewed
        leases = await store.leases()
        assert leases == {"host-a:1:1": until + timedelta(seconds=5),
                          "host-b:2:2": until - timedelta(seconds=60)}
        assert leases == await store_twin.leases()

    async def test_many_creates_and_saves_at_once(
            self, store: RunLogStore, store_twin: RunLogStore) -> None:
        logs = [_log(f"c-{i:03d}", minutes=i) for i in range(200)]
        await asyncio.gather(*((store if i % 2 else store_twin).create(log)
                               for i, log in enumerate(logs)))
        for log in logs:
            log.status = "completed"
            log.steps["s"] = StepLog(name="s", status="completed")
        await asyncio.gather(*((store_twin if i % 2 else store).save(log)
                               for i, log in enumerate(logs)))
        listed = await store.list_runs(limit=1000, status="completed")
        assert [s.run_id for s in listed] == [f"c-{i:03d}" for i in range(199, -1, -1)]
        assert await store.list_runs(status="running") == []
        got = await asyncio.gather(*(store.get(log.run_id) for log in logs[::20]))
        assert all(g.steps["s"].status == "completed" for g in got)
