"""The per-run bounds (``max_events``, ``max_run_bytes``) of the runs this process appends to."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runstream import EventRecord

__all__ = ["Written"]


class Written:
    """What this process knows of a run it appends to: the seq and size of each record kept,
    oldest first, so that it can tell Redis exactly where to trim (``XTRIM MINID``)."""

    __slots__ = ("expiry_set", "kept_from", "max_bytes", "max_events", "nbytes", "sizes")

    def __init__(self, max_events: int, max_bytes: int, kept_from: int = 1) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.sizes: deque[tuple[int, int]] = deque()  # (seq, bytes)
        self.nbytes = 0
        # The MINID last trimmed to. For a run another process began, the records before the
        # first this process appends are not its to count (the XADD MAXLEN cap bounds them).
        self.kept_from = kept_from
        #: Whether the run's stream has its safety expiry (set with the first batch).
        self.expiry_set = False

    def add(self, records: Sequence[EventRecord], values: Sequence[bytes]) -> int | None:
        """Count a batch (``values``: the records' entry values); the seq to trim to now, if
        the bounds moved past the oldest record kept. The newest record is always kept."""
        sizes = self.sizes
        for record, value in zip(records, values, strict=True):
            sizes.append((record[0], len(value)))
            self.nbytes += len(value)
        while len(sizes) > self.max_events or (self.nbytes > self.max_bytes and len(sizes) > 1):
            self.nbytes -= sizes.popleft()[1]
        if sizes[0][0] <= self.kept_from:
            return None
        self.kept_from = sizes[0][0]
        return self.kept_from
