"""Hearing that the server is stopping (SIGTERM, Ctrl+C) while streams are still open.

uvicorn (0.54) on SIGTERM stops accepting connections, then waits for the open ones to finish
(forever, unless ``--timeout-graceful-shutdown``), and only then runs the app's lifespan
shutdown. An event stream never finishes by itself, so a shutdown hook in the lifespan alone
comes too late: the streams have to be ended first. The server's own handlers for these
signals stay in charge; ours runs before them and only schedules the shutdown in the loop.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

#: The signals that ask a server to stop gracefully.
EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_exit_signal(callback: Callable[[], Any]) -> Callable[[], None]:
    """Call ``callback`` in the running loop when SIGINT or SIGTERM arrives, then the handler
    that was there before. Returns a function that puts the previous handlers back.

    Only a signal that something in the process already handles in Python (the ASGI server)
    is chained: a process that would die of the signal still does. Signal handlers belong to
    the main thread; elsewhere (a server run in a thread) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    installed: dict[int, tuple[Callable[[int, FrameType | None], Any], Any]] = {}

    for sig in EXIT_SIGNALS:
        previous = signal.getsignal(sig)
        if not callable(previous) or previous is signal.default_int_handler:
            continue

        def handler(signum: int, frame: FrameType | None,
                    previous: Callable[[int, FrameType | None], Any] = previous) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(callback)
            previous(signum, frame)

        signal.signal(sig, handler)
        installed[sig] = (handler, previous)

    def restore() -> None:
        for sig, (handler, previous) in installed.items():
            if signal.getsignal(sig) is handler:  # else someone chained after us: leave it
                signal.signal(sig, previous)
        installed.clear()

    return restore
