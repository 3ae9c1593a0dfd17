"""Reference cycles a run leaves behind: what only the cyclic garbage collector would free.

A run's objects (its task, frames, run log, the SSE plumbing) should go as soon as the run is
over, by reference counting. One cycle among them keeps all of them (and whatever they hold)
until the next full collection, which comes seconds apart at a server's pace and has to trace
them. ``cyclic_garbage()`` collects what became unreachable meanwhile, keeps it
(``gc.DEBUG_SAVEALL``) and reports the objects of runstream's own modules and frames in it.
"""

from __future__ import annotations

import gc
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _ours(obj: Any) -> bool:
    if isinstance(obj, types.FrameType):
        return "runstream" in obj.f_code.co_filename
    if isinstance(obj, types.TracebackType):
        return "runstream" in obj.tb_frame.f_code.co_filename
    return type(obj).__module__.startswith("runstream")


def describe(obj: Any) -> str:
    if isinstance(obj, types.FrameType):
        return f"frame {obj.f_code.co_name} ({obj.f_code.co_filename}:{obj.f_lineno})"
    if isinstance(obj, types.TracebackType):
        return f"traceback of {obj.tb_frame.f_code.co_name}"
    return type(obj).__qualname__


@contextmanager
def cyclic_garbage() -> Iterator[list[str]]:
    """The runstream objects (described) that the code in the ``with`` block left in
    reference cycles; filled when the block ends."""
    found: list[str] = []
    gc.collect()
    # Held meanwhile: what existed before the block (another test's runtime, say) is never
    # garbage here, so only what the block made is reported.
    before = gc.get_objects()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(sorted(describe(obj) for obj in gc.garbage if _ours(obj)))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        del before
