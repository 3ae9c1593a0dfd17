"""Appending complete lines to a file so that readers never see a damaged line.

Each batch of lines goes to the file with ``os.write`` on an ``O_APPEND`` descriptor: the kernel
puts every write at the end of the file, so runs that share a file (and other processes) never
overwrite each other. A write that fails part way (``ENOSPC`` after a short write) is rolled
back with ``ftruncate`` when the bytes at the end of the file are still the ones it wrote, so no
half line is left behind; if that is impossible, the next writer starts with a newline, and the
half line becomes one that readers skip.
"""

from __future__ import annotations

import errno
import os
import weakref
from pathlib import Path

__all__ = ["AppendFile"]

_FLAGS = (os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
          | getattr(os, "O_NOFOLLOW", 0))


class AppendFile:
    """An append-only file descriptor for JSON lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, _FLAGS, 0o644)
        self._fd: int | None = fd
        # Closes the descriptor if the sink is dropped without close() (e.g. cancelled).
        self._finalizer = weakref.finalize(self, os.close, fd)
        try:
            size = os.fstat(fd).st_size
            # A line left unfinished by an earlier crash would swallow our first line.
            self._pending_newline = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        except BaseException:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        return self._fd is None

    def append(self, data: bytes) -> None:
        """Write ``data`` (complete lines) at the end of the file, all of it or none of it."""
        fd = self._fd
        if fd is None:
            raise ValueError(f"{self.path} is closed")
        if self._pending_newline:
            data = b"\n" + data
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                n = os.write(fd, view[written:])
                if n <= 0:
                    raise OSError(errno.EIO, f"write to {self.path} made no progress")
                written += n
        except OSError:
            if written:
                self._roll_back(fd, data, written)
            raise
        self._pending_newline = False

    def _roll_back(self, fd: int, data: bytes, written: int) -> None:
        try:
            size = os.fstat(fd).st_size
            start = size - written
            if start >= 0 and os.pread(fd, written, start) == data[:written]:
                os.ftruncate(fd, start)
                return
        except OSError:
            pass
        self._pending_newline = True

    def close(self) -> None:
        if self._fd is not None:
            self._fd = None
            self._finalizer()
