"""``file-system`` run log store: one JSON file per run, written atomically."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, PrivateAttr, field_validator

from ._errors import RunIdError, RunNotFoundError, StoreError
from ._runlog import RunLog, RunStatus, RunSummary, validate_run_id
from ._store import RunLogStore, dump_run_log
from ._validation import check_store_path

T = TypeVar("T")

#: Threads of a file-system store: writes of different runs (each with an fsync) may overlap.
STORE_THREADS = 4


class FileSystemStore(RunLogStore):
    """One ``<run_id>.json`` per run under ``path``; each write replaces the file atomically."""

    path: str = Field(default=".runstream/runs", description="Directory of the run files.")

    _path_is_a_directory = field_validator("path")(partial(check_store_path, directory=True))

    # The store's own threads, not the loop's default executor (asyncio.to_thread): that one is
    # shared with user code, and a few tasks blocked in it would leave runs unrecorded.
    _pool: ThreadPoolExecutor | None = PrivateAttr(default=None)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="runstream-fs")
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: fn(*args, **kwargs))

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    def _dir(self) -> Path:
        return Path(self.path)

    def _file(self, run_id: str) -> Path:
        return self._dir() / f"{validate_run_id(run_id)}.json"

    def _write(self, run_log: RunLog, *, exclusive: bool) -> None:
        directory = self._dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            target = self._file(run_log.run_id)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(dump_run_log(run_log))
                    fh.flush()
                    os.fsync(fh.fileno())
                if exclusive:
                    os.link(tmp, target)  # fails if the run file exists: no overwrite race
                else:
                    os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        except FileExistsError:
            if not directory.is_dir():  # made a file since the config was read
                raise StoreError(f"cannot write run log: {directory} is not a directory"
                                 ) from None
            raise RunIdError(
                f"run id '{run_log.run_id}' is already used; pick another or omit it") from None
        except OSError as exc:
            raise StoreError(f"cannot write run log under {directory}: {exc}") from exc

    @contextlib.contextmanager
    def _locked(self, kind: int) -> Iterator[None]:
        """A lock on the directory's ``.lock`` file, across threads and processes: saves take it
        shared (they never wait for each other), :meth:`save_if` exclusive."""
        directory = self._dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fh = open(directory / ".lock", "a")  # noqa: SIM115 (closed below, lock with it)
        except OSError as exc:
            raise StoreError(f"cannot lock run logs under {directory}: {exc}") from exc
        with fh:
            fcntl.flock(fh, kind)
            yield

    def _save(self, run_log: RunLog) -> None:
        with self._locked(fcntl.LOCK_SH):
            self._write(run_log, exclusive=False)

    def _save_if(self, run_log: RunLog, status: RunStatus) -> bool:
        with self._locked(fcntl.LOCK_EX):
            try:
                if self._read(run_log.run_id).status != status:
                    return False
            except RunNotFoundError:
                return False
            self._write(run_log, exclusive=False)
            return True

    async def create(self, run_log: RunLog) -> None:
        await self._call(self._write, run_log, exclusive=True)

    async def save(self, run_log: RunLog) -> None:
        await self._call(self._save, run_log)

    async def save_if(self, run_log: RunLog, *, status: RunStatus) -> bool:
        return await self._call(self._save_if, run_log, status)

    def _read(self, run_id: str) -> RunLog:
        try:
            text = self._file(run_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunNotFoundError(f"no run '{run_id}' under {self._dir()}") from None
        except RunIdError:
            raise RunNotFoundError(f"no run '{run_id}': not a valid run id") from None
        return RunLog.model_validate_json(text)

    async def get(self, run_id: str) -> RunLog:
        return await self._call(self._read, run_id)

    def _list(self, limit: int, status: RunStatus | None) -> list[RunSummary]:
        directory = self._dir()
        if not directory.is_dir():
            return []
        files = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        logs = []
        for f in files:
            try:
                log = RunLog.model_validate_json(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if status is None or log.status == status:
                logs.append(log)
        logs.sort(key=lambda log: log.started, reverse=True)
        return [RunSummary(run_id=x.run_id, pipeline=x.pipeline, status=x.status,
                           started=x.started, ended=x.ended) for x in logs[:limit]]

    async def list_runs(self, *, limit: int = 50, status: RunStatus | None = None
                        ) -> list[RunSummary]:
        return await self._call(self._list, limit, status)

    # -- process leases: one small JSON file per process under <path>/.leases/ --------------
    def _lease_dir(self) -> Path:
        return self._dir() / ".leases"

    def _write_lease(self, process: str, until: datetime) -> None:
        directory = self._lease_dir()
        name = hashlib.sha256(process.encode()).hexdigest()[:32]
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"process": process, "until": until.isoformat()}, fh)
                os.replace(tmp, directory / f"{name}.json")
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        except OSError as exc:
            raise StoreError(f"cannot write a process lease under {directory}: {exc}") from exc

    def _read_leases(self) -> dict[str, datetime]:
        leases: dict[str, datetime] = {}
        stale = datetime.now(UTC) - timedelta(days=1)
        directory = self._lease_dir()
        if not directory.is_dir():
            return leases
        for f in directory.glob("*.json"):
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
                until = datetime.fromisoformat(data["until"])
                process = str(data["process"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if until < stale:  # long gone: keep the folder small
                with contextlib.suppress(OSError):
                    f.unlink()
                continue
            leases[process] = until
        return leases

    async def renew_lease(self, process: str, until: datetime) -> bool:
        await self._call(self._write_lease, process, until)
        return True

    async def leases(self) -> dict[str, datetime] | None:
        return await self._call(self._read_leases)
