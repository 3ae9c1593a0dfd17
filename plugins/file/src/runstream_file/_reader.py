"""Reading event files back."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from pydantic import ValidationError
from runstream import Event

__all__ = ["read_events"]

logger = logging.getLogger("runstream.file")


def read_events(path: str | os.PathLike[str], *, run_id: str | None = None) -> Iterator[Event]:
    """Yield the events stored in a JSON-lines event file, in order.

    A last line without its newline (a write that was cut short, or one in progress) is
    skipped silently; a damaged line elsewhere is skipped with a warning on the
    ``runstream.file`` logger. ``run_id`` keeps only that run's events (for files that
    several runs share).
    """
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith(b"\n"):
                logger.debug("%s:%d: skipped an unfinished last line", path, lineno)
                return
            if not line.strip():
                continue
            try:
                event = Event.model_validate_json(line)
            except ValidationError:
                logger.warning("%s:%d: skipped a line that is not an event", path, lineno)
                continue
            if run_id is None or event.run_id == run_id:
                yield event
