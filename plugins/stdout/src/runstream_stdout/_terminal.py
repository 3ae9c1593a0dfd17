"""The display that every run of one configured ``stdout`` sink writes to.

The terminal is shared by all runs, so their output is coordinated here: lines are printed
whole (prefixed with a short run id while more than one run is active), streamed text is
written as it arrives while a single run has the terminal to itself and line by line
otherwise, and runs that take longer than :data:`LIVE_AFTER` seconds get a row in a rich
``Progress`` display (spinner, step, elapsed time, events, the text line in progress) at the
bottom of the terminal, which disappears when the last of them ends. When that display starts
(or a second run starts) while a single run's text line is unfinished, that line is taken back
from the screen (with rich's cursor controls) and goes on in the run's live row, so no line of
text is ever cut in two.

One ``Terminal`` belongs to one configured sink: the per-run copies of the sink share it (it
deep-copies to itself) rather than a module-level singleton.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.control import Control
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TaskID
from rich.segment import ControlType
from rich.text import Text

from ._format import clean, duration, plural, short_id, text_line

__all__ = ["LIVE_AFTER", "RunView", "Terminal"]

#: Seconds a run must be running before it gets a row in the live display.
LIVE_AFTER = 1.0
_TAIL = 48


class RunView:
    """What the display knows about one active run."""

    def __init__(self, run_id: str, pipeline: str) -> None:
        self.run_id = run_id
        self.label = short_id(run_id)
        self.pipeline = pipeline
        self.started = time.monotonic()
        self.step: str | None = None
        self.step_started: dict[str, float] = {}
        self.events = 0
        self.seconds: float | None = None
        self.reason: str | None = None
        self.partial = ""
        self.task_id: TaskID | None = None
        self.timer: asyncio.TimerHandle | None = None


class _RunColumn(ProgressColumn):
    """One live row: run, pipeline, step, elapsed time, events, the text line in progress."""

    def render(self, task: Task) -> Text:
        view: RunView = task.fields["view"]
        tail = view.partial[-_TAIL:]
        if len(view.partial) > _TAIL:
            tail = "…" + tail[1:]
        return Text.assemble(
            (f"[{view.label}] ", "dim"), (clean(view.pipeline), "bold"), (" · ", "dim"),
            (clean(view.step or "starting"), "cyan"),
            (f" · {duration(time.monotonic() - view.started)} · "
             f"{plural(view.events, 'event')}", "dim"),
            ("  " + clean(tail) if tail else "", "italic"),
            no_wrap=True, overflow="ellipsis",
        )


class Terminal:
    """The shared output of one configured ``stdout`` sink (see the module docstring)."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None
        # Runs may come from event loops in several threads.
        self._lock = threading.RLock()
        self._runs: list[RunView] = []
        self._progress: Progress | None = None
        self._waiting: list[RunView] = []  # due in the live display
        # The text line a lone run is writing where the cursor is: raw, and as shown.
        self._midline = False
        self._inline_view: RunView | None = None
        self._inline_raw = ""
        self._inline_shown = ""

    def __deepcopy__(self, memo: dict[int, Any]) -> Terminal:
        return self

    def __copy__(self) -> Terminal:
        return self

    @property
    def console(self) -> Console:
        with self._lock:
            if self._console is None:
                # Without a file, rich looks sys.stdout / sys.stderr up at each write.
                self._console = Console(stderr=self._stderr, highlight=False)
            return self._console

    def use_console(self, console: Console) -> None:
        with self._lock:
            self._console = console

    # -- runs ------------------------------------------------------------------------------
    def add(self, view: RunView, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._take_back_inline()
            self._runs.append(view)
            if self.console.is_terminal:
                view.timer = loop.call_later(LIVE_AFTER, self._show, view)

    def finish(self, view: RunView, lines: list[Text]) -> None:
        """Print ``view``'s last lines and forget it."""
        with self._lock:
            if view not in self._runs:
                return
            self._flush_partial(view)
            for line in lines:
                self._print(view, line)
            self._runs.remove(view)
            if view in self._waiting:
                self._waiting.remove(view)
            if view.timer is not None:
                view.timer.cancel()
                view.timer = None
            progress = self._progress
            if progress is not None and view.task_id is not None:
                progress.remove_task(view.task_id)
                view.task_id = None
                if not progress.tasks:
                    progress.stop()
                    self._progress = None

    def _show(self, view: RunView) -> None:
        with self._lock:
            view.timer = None
            if view in self._runs:
                self._waiting.append(view)
                self._show_waiting()

    def _show_waiting(self) -> None:
        if not self._waiting:
            return
        self._take_back_inline()
        if self._progress is None:
            self._progress = Progress(SpinnerColumn(), _RunColumn(), console=self.console,
                                      transient=True, refresh_per_second=8,
                                      redirect_stdout=False, redirect_stderr=False)
            self._progress.start()
        for view in self._waiting:
            view.task_id = self._progress.add_task(view.run_id, total=None, view=view)
        self._waiting.clear()

    # -- output ----------------------------------------------------------------------------
    def line(self, view: RunView, text: Text) -> None:
        """Print one whole line for ``view``."""
        with self._lock:
            self._flush_partial(view)
            self._print(view, text)
            self._show_waiting()

    def text(self, view: RunView, chunk: str) -> None:
        """Show streamed text as it arrives."""
        chunk = chunk.replace("\r\n", "\n")
        with self._lock:
            if self._progress is None and len(self._runs) == 1:
                # Alone on a plain terminal: write the text where the cursor is.
                chunk, view.partial = view.partial + chunk, ""
                out = []
                for piece in chunk.splitlines(keepends=True):
                    if not self._midline:
                        out.append("    ")
                        self._inline_raw, self._inline_shown = "", "    "
                    out.append(clean(piece))
                    self._inline_raw += piece
                    self._inline_shown += clean(piece)
                    self._midline = not piece.endswith("\n")
                self._inline_view = view if self._midline else None
                self.console.print(Text("".join(out)), end="", soft_wrap=True)
                self._show_waiting()
                return
            # Shared: whole lines only; the unfinished one shows in the live row.
            *lines, view.partial = (view.partial + chunk).split("\n")
            for line in lines:
                self._print(view, text_line(line))

    def _flush_partial(self, view: RunView) -> None:
        if view.partial:
            partial, view.partial = view.partial, ""
            self._print(view, text_line(partial))

    def _end_inline(self) -> None:
        if self._midline:
            self._midline = False
            self._inline_view = None
            self.console.print()

    def _take_back_inline(self) -> None:
        """Move an unfinished line of text written where the cursor is into its run's
        ``partial`` (shown in the live row, printed whole once it ends)."""
        view = self._inline_view
        console = self.console
        if not self._midline or view is None or not console.is_terminal:
            self._end_inline()
            return
        rows = max(1, -(-cell_len(self._inline_shown) // max(1, console.width)))
        erase = [Control(ControlType.CARRIAGE_RETURN, (ControlType.ERASE_IN_LINE, 2))]
        erase += [Control((ControlType.CURSOR_UP, 1), (ControlType.ERASE_IN_LINE, 2))] * (rows - 1)
        console.control(*erase)
        view.partial = self._inline_raw + view.partial
        self._midline = False
        self._inline_view = None

    def _print(self, view: RunView, text: Text) -> None:
        self._end_inline()
        if len(self._runs) > 1:
            text = Text.assemble((f"[{view.label}] ", "dim"), text)
        self.console.print(text, soft_wrap=True)
