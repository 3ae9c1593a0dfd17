"""The ``stdout`` sink: pretty live output on a terminal, JSON lines otherwise."""

from __future__ import annotations

import asyncio
from typing import IO, TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr
from runstream import Sink

from . import _format as fmt
from ._terminal import RunView, Terminal

if TYPE_CHECKING:
    from rich.console import Console
    from runstream import Event, RunLog

__all__ = ["StdoutSink"]


class StdoutSink(Sink):
    """Prints every event of a run to the terminal (``pretty``) or as JSON lines (``jsonl``).

    ``pretty`` prints one line per lifecycle event with the step and its timing, streams the
    ``text`` of ``step.event`` dicts as it arrives (other dicts as one compact line), shows a
    live progress row for runs that take longer than a second, and ends with a summary. Runs
    of one configured sink share the terminal: while several are active, each line starts
    with a short run id. ``jsonl`` writes ``event.to_json()`` per line, flushed per
    event. ``auto`` (the default) is ``pretty`` when the stream is a terminal.
    """

    format: Literal["auto", "pretty", "jsonl"] = Field(
        default="auto",
        description="`pretty`, `jsonl`, or `auto`: `pretty` on a terminal, else `jsonl`.")
    stream: Literal["stdout", "stderr"] = Field(
        default="stdout", description="Where to write: `stdout` or `stderr`.")

    _terminal: Terminal = PrivateAttr()
    _view: RunView | None = PrivateAttr(default=None)
    _out: IO[str] | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        self._terminal = Terminal(stderr=self.stream == "stderr")

    def use_console(self, console: Console) -> StdoutSink:
        """Write to ``console`` (a ``rich.console.Console``) instead of the stream, e.g. one
        that renders into a string buffer. Applies to every run of this configured sink;
        ``auto`` then picks ``pretty`` if ``console.is_terminal``. Returns the sink."""
        self._terminal.use_console(console)
        return self

    async def open(self, run: RunLog) -> None:
        console = self._terminal.console
        mode = self.format
        if mode == "auto":
            mode = "pretty" if console.is_terminal else "jsonl"
        if mode == "jsonl":
            self._out = console.file
            return
        view = self._view = RunView(run.run_id, run.pipeline)
        terminal = self._terminal
        terminal.add(view, asyncio.get_running_loop())
        task = asyncio.current_task()
        if task is not None:
            # If this sink is dropped (an error, a timeout), its run must leave the display.
            task.add_done_callback(lambda _: terminal.finish(view, []))

    async def send(self, event: Event) -> None:
        out = self._out
        if out is not None:
            out.write(event.to_json() + "\n")
            out.flush()
            return
        view = self._view
        if view is None:
            return
        terminal = self._terminal
        kind, step, data = event.type, event.step or "", event.data
        if kind == "step.event":
            view.events += 1
            text = data.get("text")
            if isinstance(text, str):
                terminal.text(view, text)
            else:
                terminal.line(view, fmt.step_event(event.step, data))
        elif kind == "step.started":
            view.step = step
            view.step_started[step] = event.ts
            terminal.line(view, fmt.step_started(step))
        elif kind == "step.completed":
            ms = data.get("duration_ms")
            seconds = ms / 1000 if isinstance(ms, int | float) else self._since(step, event)
            terminal.line(view, fmt.step_completed(step, seconds or 0.0))
        elif kind == "step.failed":
            terminal.line(view, fmt.step_failed(step, self._since(step, event), data))
        elif kind == "run.started":
            terminal.line(view, fmt.run_started(view.pipeline, view.run_id))
        elif kind in {"run.completed", "run.failed", "run.cancelled"}:
            ms = data.get("duration_ms")
            view.seconds = ms / 1000 if isinstance(ms, int | float) else None
            reason = data.get("reason")
            view.reason = reason if isinstance(reason, str) else None
        else:
            terminal.line(view, fmt.step_event(event.step, {"type": kind, **data}))

    def _since(self, step: str, event: Event) -> float | None:
        view = self._view
        started = view.step_started.get(step) if view is not None else None
        return None if started is None else max(0.0, event.ts - started)

    async def close(self, run: RunLog, status: str) -> None:
        if self._out is not None:
            self._out.flush()
            return
        view = self._view
        if view is not None:
            self._terminal.finish(view, fmt.summary(run, status, view.seconds, view.events,
                                                    view.reason))
