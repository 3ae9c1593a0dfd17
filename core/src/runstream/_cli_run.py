"""``runstream run``: load the target, check the parameters, stream the events to stdout."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import stat
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import ParameterError, RunstreamError
from ._validation import printable

if TYPE_CHECKING:
    from ._events import Event
    from ._pipeline import AsyncPipeline
    from ._runlog import RunLog
    from ._runtime import Runtime

#: Exit status when stdout was closed before the run ended (``runstream run ... | head``):
#: 128 + SIGPIPE, what a shell reports for ``cat``, ``yes`` or ``git log`` in the same spot.
EXIT_STDOUT_CLOSED = 141

#: The reason recorded in the run log of a run cancelled because stdout was closed.
STDOUT_CLOSED = "stdout closed"

#: Hooks that see a run's parameters: a plugin implementing one may read any parameter.
_PARAMETER_HOOKS = ("before_run", "after_run", "before_node_run", "after_node_run",
                    "on_node_error")


class StdoutClosed(Exception):
    """Writing an event failed because the reader of stdout went away; the run was cancelled
    and its record saved (``run_log``)."""

    def __init__(self, run_log: RunLog) -> None:
        super().__init__(STDOUT_CLOSED)
        self.run_log = run_log


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    from ._params import parse_value
    from ._yaml_load import check_tree

    params: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise RunstreamError(f"--param {item!r}: use NAME=VALUE, e.g. --param prompt=hello")
        where = f"--param '{name.strip()}'"
        try:
            params[name.strip()] = parsed = parse_value(value)
        except ParameterError as exc:
            raise ParameterError(f"{where}: {exc}") from None
        check_tree(parsed, where, ParameterError)
    return params


def load_target(target: str, runtime: Runtime) -> AsyncPipeline:
    from ._refs import load_pipeline_ref

    # The target, and the `module:function` strings of a YAML pipeline's steps, are imported
    # like `python -m` would: from the working directory.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return load_pipeline_ref(target, runtime)


def check_params(pipeline: AsyncPipeline, runtime: Runtime, params: dict[str, Any],
                 *, strict: bool) -> None:
    """Warn about (``strict``: refuse) a ``--param`` that no step of ``pipeline`` reads.

    Only when every step can tell what it reads: one that cannot (a task type that does not
    say, a function taking ``**kwargs``, a plugin hook that sees the parameters) means no
    warning at all, never a false one."""
    from ._reads import parameters_read

    if not params or any(runtime.has_hook(h) for h in _PARAMETER_HOOKS):
        return
    reads = parameters_read(pipeline)
    if reads is None:
        return
    known = f"it reads: {', '.join(sorted(reads))}" if reads else "it reads none"
    for name in params:
        if name in reads:
            continue
        message = (f"--param '{printable(name)}': pipeline '{pipeline.name}' has no parameter "
                   f"'{printable(name)}' ({known})")
        if strict:
            raise ParameterError(f"{message}; check the spelling, or drop --strict")
        print(f"runstream: warning: {message}; it is ignored (--strict makes this an error)",
              file=sys.stderr)


def use_colour(out: TextIO) -> bool:
    return out.isatty() and not os.environ.get("NO_COLOR")


def pretty_line(step: str | None, data: dict[str, Any], colour: bool) -> str:
    """``{"type": "chunk", "text": "Hi"}`` of step ``llm`` -> ``llm  chunk text=Hi``, with
    control characters escaped (event data never drives the terminal)."""
    parts = [_value(data["type"])] if "type" in data else []
    parts += [f"{printable(k)}={_value(v)}" for k, v in data.items() if k != "type"]
    label = printable(step or "-")
    if colour:
        label = f"\033[2m{label}\033[0m"
    return f"{label}  {' '.join(parts) or '{}'}"


_VALUE_WIDTH = 200


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr,
                                                           ensure_ascii=False)
    text = printable(text)
    return text if len(text) <= _VALUE_WIDTH else text[:_VALUE_WIDTH - 1] + "…"


async def run(args: argparse.Namespace, out: TextIO) -> int:
    from ._runtime import Runtime

    params = parse_params(args.param)
    runtime = Runtime(args.config)
    try:
        pipeline = load_target(args.target, runtime)
        check_params(pipeline, runtime, params, strict=args.strict)
        log = await _stream(args, pipeline, runtime, params, out)
    finally:
        await runtime.aclose()
    return _report(log)


async def _stream(args: argparse.Namespace, pipeline: AsyncPipeline, runtime: Runtime,
                  params: dict[str, Any], out: TextIO) -> RunLog:
    # A configured stdout sink already prints the events: don't print them twice.
    quiet = args.quiet or any(entry.type == "stdout" for entry in runtime.config.sinks)
    fmt = args.format or ("pretty" if out.isatty() else "jsonl")
    colour = fmt == "pretty" and use_colour(out)
    closed = asyncio.Event()
    cancelling: list[asyncio.Task[Any]] = []

    def stdout_closed() -> None:
        # Further writes (ours, a stdout sink's, the interpreter's at exit) go to /dev/null:
        # no BrokenPipeError anywhere, while the run is cancelled and its record saved.
        if not closed.is_set():
            closed.set()
            stdout_gone()
            cancelling.append(asyncio.create_task(handle.cancel(STDOUT_CLOSED)))

    # A `stdout` sink writes to sys.stdout too: through the guard, its failed write also ends
    # the run as "stdout closed" instead of dropping the sink with a warning.
    guarded = _PipeGuard(out, stdout_closed)
    with contextlib.redirect_stdout(guarded):
        # The CLI's user is the caller asking for the environment: RUNSTREAM_PRM_* are read.
        handle = pipeline.stream(params, run_id=args.run_id, config=runtime,
                                 parameters_file=args.parameters_file, environment=True,
                                 owner=args.owner or None)
        events = aiter(handle)
        unwatch = _watch_reader(out, stdout_closed)
        try:
            await _print(events, guarded, closed, quiet=quiet, fmt=fmt, colour=colour)
        finally:
            unwatch()
            # Cancel with the reason before the iterator is closed (closing it cancels too,
            # with a generic reason), and wait for the run's record to be saved before the
            # store closes.
            await handle.cancel(STDOUT_CLOSED if closed.is_set() else "interrupted")
            await asyncio.gather(*cancelling)
            await events.aclose()  # type: ignore[attr-defined]
    if closed.is_set():
        raise StdoutClosed(handle.run_log)
    return await handle.result()


async def _print(events: AsyncIterator[Event], out: io.TextIOBase, closed: asyncio.Event, *,
                 quiet: bool, fmt: str, colour: bool) -> None:
    async for event in events:
        if event.type != "step.event" or quiet or closed.is_set():
            continue
        line = (json.dumps(event.data, default=repr) if fmt == "jsonl"
                else pretty_line(event.step, event.data, colour))
        out.write(line + "\n")
        out.flush()


class _PipeGuard(io.TextIOBase):
    """``out`` whose writes call ``on_closed`` instead of raising BrokenPipeError."""

    def __init__(self, out: TextIO, on_closed: Callable[[], None]) -> None:
        self._out = out
        self._on_closed = on_closed

    def write(self, text: str) -> int:
        try:
            self._out.write(text)
        except BrokenPipeError:
            self._on_closed()
        return len(text)

    def flush(self) -> None:
        try:
            self._out.flush()
        except BrokenPipeError:
            self._on_closed()

    def isatty(self) -> bool:
        return self._out.isatty()

    def fileno(self) -> int:
        return self._out.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._out, "encoding", None) or "utf-8"


def _watch_reader(out: TextIO, on_closed: Callable[[], None]) -> Callable[[], None]:
    """Call ``on_closed`` as soon as the reader of ``out`` goes away, if ``out`` is a pipe:
    even while nothing is written (a quiet run, a slow step, a stdout sink).

    A pipe's write end is never readable, so a reader callback fires only on its error state
    (EPOLLERR/POLLERR), which is what closing the read end sets. (Not for sockets: a peer that
    sends data would look the same; a write to a closed socket still raises BrokenPipeError.)
    Returns the undo."""
    try:
        fd = out.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return lambda: None
        loop = asyncio.get_running_loop()
        loop.add_reader(fd, on_closed)
    except (OSError, ValueError, NotImplementedError, io.UnsupportedOperation):
        return lambda: None

    def unwatch() -> None:
        loop.remove_reader(fd)

    return unwatch


def stdout_gone() -> None:
    """Point stdout at /dev/null: the interpreter flushes it at exit, and a write to the closed
    pipe then would print a BrokenPipeError warning (Python docs, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (captured)
        pass
    finally:
        os.close(devnull)


def _report(log: RunLog) -> int:
    took = ""
    if log.ended is not None:
        took = f" in {(log.ended - log.started).total_seconds() * 1000:.0f} ms"
    if log.status == "completed":
        print(f"run {log.run_id} completed{took}", file=sys.stderr)
        return 0
    if log.status == "failed" and log.error is not None:
        where = f" in step '{log.error.step}'" if log.error.step else ""
        print(f"run {log.run_id} failed{where}: {log.error.type}: {log.error.message}",
              file=sys.stderr)
        return 1
    reason = f": {log.error.message}" if log.status == "cancelled" and log.error else ""
    print(f"run {log.run_id} {log.status}{took}{reason}", file=sys.stderr)
    return 1
