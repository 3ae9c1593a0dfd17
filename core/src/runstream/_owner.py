"""Which process owns a run, so that a restarted process can tell orphaned runs from live ones."""

from __future__ import annotations

import functools
import os
import socket


def _start_ticks(pid: int) -> str | None:
    # Field 22 of /proc/PID/stat: the process start time. Together with the pid it identifies a
    # process even after the pid is reused.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


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
    ticks = _start_ticks(pid)
    return ticks is None or start in ("?", ticks)
