"""Which process owns a run, so that a restarted process can tell orphaned runs from live ones."""

from __future__ import annotations

import functools
import os
import socket


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3, the state, first)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def _start_ticks(pid: int) -> str | None:
    # Field 22 of /proc/PID/stat: the process start time. Together with the pid it identifies a
    # process even after the pid is reused.
    fields = _stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


@functools.cache
def current_owner() -> str:
    """``host:pid:start`` of this process."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def owner_is_alive(owner: str | None) -> bool | None:
    """True/False for a run owned by a process on this host; None when it cannot be told
    (another host, or no owner recorded)."""
    if not owner:
        return None
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return current_owner() == owner
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _stat(pid)
    if fields is None:
        return True  # exists, but /proc cannot tell more (another OS): assume it is alive
    if fields[0] in ("Z", "X"):
        return False  # killed and not reaped yet (a zombie): it runs nothing any more
    ticks = fields[19] if len(fields) > 19 else None
    return ticks is None or start in ("?", ticks)
