"""The ``file`` sink: every event of a run as one JSON line, appended to a file."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator
from runstream import RunNotFoundError, Sink

from ._paths import DEFAULT_PATH, PathTemplate
from ._reader import read_events
from ._writer import AppendFile

if TYPE_CHECKING:
    from pathlib import Path

    from runstream import Event, RunLog

__all__ = ["FileSink"]


class FileSink(Sink):
    """Writes each event envelope of a run as one JSON line (``event.to_json()``).

    Lines are appended with one ``os.write`` per flush on an ``O_APPEND`` descriptor, so runs
    may share a file. By default every event is flushed at once; ``flush_every`` and
    ``flush_interval`` batch them, and whatever is buffered is written when the run ends.
    The writes happen in the event loop: an append to the page cache (no fsync) takes a few
    microseconds, less than handing each line to a worker thread would cost, and the sink
    runs on its own queue, so it never holds the run up.

    A path that would leave the base directory, or a failing write (e.g. a full disk), raises:
    the run reports the sink in its warnings and goes on without it.
    """

    path: str = Field(
        default=DEFAULT_PATH,
        description="File path template with {run_id}, {pipeline}, {date} (the run's UTC "
                    "start date, YYYY-MM-DD) and {params.NAME}; relative to the working "
                    "directory.",
    )
    base_dir: str | None = Field(
        default=None,
        description="The directory event files must stay inside. Default: the template's "
                    "fixed leading directory (the working directory if there is none).",
    )
    flush_every: int = Field(default=1, ge=1,
                             description="Write after this many events (1: every event).")
    flush_interval: float | None = Field(
        default=None, gt=0,
        description="Also write buffered events at most this many seconds after the first "
                    "of them arrived.")

    _template: PathTemplate = PrivateAttr()
    _file: AppendFile | None = PrivateAttr(default=None)
    _buffer: list[bytes] = PrivateAttr(default_factory=list)
    _timer: asyncio.TimerHandle | None = PrivateAttr(default=None)
    _error: Exception | None = PrivateAttr(default=None)

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        PathTemplate(value)
        return value

    @field_validator("base_dir")
    @classmethod
    def _check_base_dir(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            if not value:
                raise ValueError("base_dir must not be empty (leave it out for the default)")
            path = info.data.get("path")
            if isinstance(path, str):
                PathTemplate(path, value)
        return value

    def model_post_init(self, context: Any, /) -> None:
        self._template = PathTemplate(self.path, self.base_dir)

    @property
    def template(self) -> PathTemplate:
        """The parsed ``path`` template with its base directory."""
        return self._template

    def path_for(self, run: RunLog) -> Path:
        """The event file of ``run``; raises ``EventPathError`` if it would be unsafe."""
        return self._template.path_for(run)

    async def open(self, run: RunLog) -> None:
        path = self.path_for(run)
        os.makedirs(path.parent, exist_ok=True)
        path = self._template.confine(str(path))  # again, now that the directories exist
        self._file = AppendFile(path)

    async def send(self, event: Event) -> None:
        if self._error is not None:
            raise self._error
        self._buffer.append(event.to_json().encode() + b"\n")
        if len(self._buffer) >= self.flush_every:
            self._flush()
        elif self.flush_interval is not None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self.flush_interval, self._flush_on_timer)

    async def close(self, run: RunLog, status: str) -> None:
        try:
            if self._error is not None:
                raise self._error
            self._flush()
        finally:
            self._close_file()

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer or self._file is None:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        try:
            self._file.append(data)
        except BaseException:
            self._close_file()
            raise

    def _flush_on_timer(self) -> None:
        self._timer = None
        try:
            self._flush()
        except Exception as exc:
            # Raised to the runner by the next send() or by close().
            self._error = exc

    def _close_file(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def read_run_events(self, run_id: str) -> Iterator[Event]:
        """The events of ``run_id`` read back from the files this sink writes, in file order.

        Raises :class:`runstream.RunNotFoundError` if no file matches. Used by
        ``runstream runs events``.
        """
        files = list(self._template.files_of(run_id))
        if not files:
            raise RunNotFoundError(
                f"no event file for run {run_id} (looked for {self.path!r} inside "
                f"{self._template.base_dir!r}, from {os.getcwd()})")
        return _chain(files, run_id)


def _chain(files: list[Path], run_id: str) -> Iterator[Event]:
    for path in files:
        yield from read_events(path, run_id=run_id)
