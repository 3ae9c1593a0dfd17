"""The ``runstream`` command line: run pipelines, list plugins, read run logs.

Exit codes: 0 success, 1 the pipeline failed or was cancelled, 2 a usage, config or definition
error (one line on stderr, no traceback), 130 interrupted (Ctrl-C), 141 stdout was closed
before the command finished.

141 is 128 + SIGPIPE: what a shell reports for `cat`, `yes` or `git log` whose reader went
away, so scripts that run with `set -o pipefail` treat every such command alike, and a run
cut short is not mistaken for one that completed (0). `runstream run ... | head -2` cancels the
run when `head` exits: its run log says `cancelled`, reason `stdout closed`, and stderr says
`run <id> cancelled: stdout closed`.

Output of `runstream run`: on a terminal, one readable line per event (`step  type key=value`,
control characters escaped; `NO_COLOR` turns off the dimmed step name); piped or redirected,
one JSON object per line. `--format pretty|jsonl` chooses either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ._cli_run import EXIT_STDOUT_CLOSED, STDOUT_CLOSED, StdoutClosed, run, stdout_gone
from ._errors import RunstreamError
from ._validation import printable, short_repr

PROG = "runstream"
#: Most runs `runs ls` lists (a bigger --limit overflows the stores' integer types).
MAX_LIST_LIMIT = 1_000_000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Run async pipelines and stream their events.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run a pipeline and stream its events",
                         description="Run a pipeline; each event a task emits is printed to "
                                     "stdout while it runs: a readable line on a terminal, a "
                                     "JSON line when piped (see --format; nothing when the "
                                     "config has a `stdout` sink, which prints them itself). "
                                     "Closing stdout (`| head -2`) cancels the run.")
    run.add_argument("target", metavar="TARGET",
                     help="a YAML pipeline file, or module:function returning a pipeline "
                          "(or module:attribute holding one)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a parameter; VALUE is JSON-decoded (text that is not JSON stays a "
                          "string). Repeatable. RUNSTREAM_PRM_<name> environment variables "
                          "are read too (below --param, above --parameters-file).")
    run.add_argument("--parameters-file", metavar="FILE", help="a YAML file of parameters")
    run.add_argument("--config", metavar="FILE", help="the config file (default: "
                     "$RUNSTREAM_CONFIGURATION_FILE or ./runstream.yaml)")
    run.add_argument("--run-id", metavar="ID", help="the run id (default: generated)")
    run.add_argument("--owner", metavar="NAME",
                     help="record the run as NAME's (RunLog.owner): HTTP endpoints with an "
                          "authorize hook serve it only to NAME (default: no owner)")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="do not print events; only the final status line on stderr")
    run.add_argument("--format", choices=["pretty", "jsonl"],
                     help="how events are printed: pretty (one readable line per event) or "
                          "jsonl (one JSON object per line); default: pretty on a terminal, "
                          "jsonl when stdout is a pipe or a file")
    run.add_argument("--strict", action="store_true",
                     help="exit 2 instead of warning when a --param names a parameter that "
                          "no step of the pipeline reads")

    plugins = sub.add_parser("plugins", help="list installed plugins and what they register",
                             description="List each plugin: distribution, version, what it "
                                         "registered, or why it failed to load.")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.add_argument("--check", action="store_true",
                         help="validate each plugin: it loads, its hooks match runstream's "
                              "specs, its task types and sinks construct, no name clashes; "
                              "exit 1 if any problem")

    runs = sub.add_parser("runs", help="read the run log store, cancel runs",
                          description="Read runs from the configured run log store; send a "
                                      "cancel signal through the configured event log.")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND",
                                   parser_class=_Parser)
    ls = runs_sub.add_parser("ls", help="list recent runs, newest first")
    ls.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    ls.add_argument("--status", choices=["queued", "running", "completed", "failed", "cancelled",
                                         "abandoned"], help="only runs with this status")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("--config", metavar="FILE", help="the config file")
    show = runs_sub.add_parser("show", help="print one run's log as JSON")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--config", metavar="FILE", help="the config file")
    events = runs_sub.add_parser(
        "events", help="print one run's events back from its event file, as JSON lines",
        description="Print the events of a run, one JSON envelope per line, read back from "
                    "the file the `file` sink wrote (needs runstream-file).")
    events.add_argument("run_id", metavar="RUN_ID")
    events.add_argument("--path", metavar="TEMPLATE",
                        help="the file sink's path template (default: the path of the first "
                             "`file` sink in the config, else .runstream/events/{run_id}.jsonl)")
    events.add_argument("--config", metavar="FILE", help="the config file")
    cancel = runs_sub.add_parser(
        "cancel", help="send a cancel signal to a running run",
        description="Send a cancel signal for a running run through the config's event log: "
                    "the process that drives the run stops it (its clients get "
                    "run.cancelled). Exit 0 once the signal is sent, 1 for an unknown or "
                    "ended run. The default `memory` event log reaches this process only, so "
                    "it cannot cancel a server's run: configure a shared one (`event_log: "
                    "{type: redis, url: ...}`, runstream-redis).")
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.add_argument("--config", metavar="FILE", help="the config file")
    from ._cli_worker import add_worker_parser

    add_worker_parser(sub)
    return parser


def _fail(message: str, code: int = 2) -> int:
    # One line, whatever the message quotes from the user's input.
    print(f"{PROG}: error: {printable(message)}", file=sys.stderr)
    return code


def _plugins(args: argparse.Namespace, out: TextIO) -> int:
    from ._plugins import load_plugins

    loaded = load_plugins()
    if args.check:
        return _check_plugins(loaded, args.json, out)
    infos = loaded.infos
    if args.json:
        out.write(json.dumps([i.as_dict() for i in infos], indent=2) + "\n")
        return 0
    for info in infos:
        dist = f"{info.distribution or '-'} {info.version or ''}".strip()
        out.write(f"{info.name}  ({dist})  {info.status}\n")
        for kind, names in sorted(info.registered.items()):
            out.write(f"    {kind.replace('_', ' ')}: {', '.join(names)}\n")
        if info.error:
            out.write(f"    error: {info.error}\n")
    return 0


def _check_plugins(loaded: Any, as_json: bool, out: TextIO) -> int:
    from ._plugin_check import check_plugins

    checks = check_plugins(loaded)
    failed = [c for c in checks if not c.ok]
    if as_json:
        out.write(json.dumps([c.as_dict() for c in checks], indent=2) + "\n")
    else:
        for c in checks:
            out.write(f"{c.name}  ({c.distribution or '-'})  {'ok' if c.ok else 'PROBLEM'}\n")
            for problem in c.problems:
                out.write(f"    problem: {problem}\n")
            for note in c.notes:
                out.write(f"    note: {note}\n")
    if failed:
        print(f"{len(failed)} plugin(s) with problems: {', '.join(c.name for c in failed)}",
              file=sys.stderr)
        return 1
    return 0


async def _runs(args: argparse.Namespace, out: TextIO) -> int:
    from ._runtime import Runtime

    runtime = Runtime(args.config)
    try:
        if args.runs_command == "cancel":
            return await cancel_run(runtime, args.run_id, out)
        if args.runs_command == "show":
            log = await runtime.store.get(args.run_id)
            out.write(log.model_dump_json(indent=2) + "\n")
            return 0
        if not 1 <= args.limit <= MAX_LIST_LIMIT:
            raise RunstreamError(f"--limit must be between 1 and {MAX_LIST_LIMIT:,}, got "
                                 f"{short_repr(args.limit)}")
        # Each directory has its own default store: say which one this is.
        print(_where_runs_are(runtime), file=sys.stderr)
        summaries = await runtime.store.list_runs(limit=args.limit, status=args.status)
        if args.json:
            out.write(json.dumps([s.model_dump(mode="json") for s in summaries], indent=2)
                      + "\n")
            return 0
        for s in summaries:
            out.write(f"{s.run_id}  {s.status:<9}  {s.pipeline}  "
                      f"{s.started.isoformat(timespec='seconds')}\n")
        if not summaries:
            print("no runs", file=sys.stderr)
        return 0
    finally:
        await runtime.aclose()


async def cancel_run(runtime: Any, run_id: str, out: TextIO) -> int:
    """``runstream runs cancel``: 0 once the signal is sent, 1 if there is no such running
    run in the event log."""
    log = runtime.event_log
    await runtime.start()
    info = await log.get_run(run_id)
    if info is None:
        where = ("it is not running, or it ended more than the event log's ttl ago" if log.shared
                 else "the memory event log reaches this process only, so the CLI cannot "
                      "cancel a run of another process (a server's): configure a shared event "
                      "log, e.g. event_log: {type: redis, url: ...} (runstream-redis)")
        return _fail(f"no run '{run_id}' in the {runtime.config.event_log.type} event log; "
                     f"{where}", 1)
    if info.ended or not await log.cancel(run_id, "cancelled from the command line"):
        status = info.status if info.ended else "ended"
        return _fail(f"run '{run_id}' has already ended ({status}): nothing to cancel", 1)
    out.write(f"cancel signal sent to run {run_id}\n")
    return 0


def _where_runs_are(runtime: Any) -> str:
    kind = runtime.config.run_log_store.type
    path = getattr(runtime.store, "path", None)
    where = f" at {Path(path).resolve()}" if isinstance(path, str) else ""
    if kind == "memory":
        where = " (each process has its own: a new command sees no runs)"
    source = (f"config {Path(runtime.config_file).resolve()}" if runtime.config_file
              else f"no config file: defaults for {Path.cwd()}")
    return f"runs in the {kind} store{where} ({source})"


def _run_events(args: argparse.Namespace, out: TextIO) -> int:
    from pydantic import ValidationError

    from ._config import find_config_file, load_config
    from ._errors import ConfigError, PluginError, RunNotFoundError
    from ._plugins import load_plugins
    from ._runlog import validate_run_id
    from ._validation import explain

    run_id = validate_run_id(args.run_id)
    config = load_config(args.config)
    source = str(find_config_file(args.config) or "config")
    # The file sink comes through the plugin registry: the core never imports the plugin.
    sinks = load_plugins().sinks
    if "file" not in sinks:
        raise ConfigError("reading event files needs the 'file' sink, which is not installed; "
                          "install runstream-file (pip install runstream-file)")
    cls = sinks.get("file")
    entries = [(i, e) for i, e in enumerate(config.sinks) if e.type == "file"]
    if args.path is not None:
        options: dict[str, Any] = {"path": args.path}
        where = "--path"
    elif entries:
        i, entry = entries[0]
        options = entry.options()
        where = f"{source}: sinks[{i}] (type: file)"
    else:
        options, where = {}, "the file sink's defaults"
    try:
        sink = cls.model_validate(options)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {explain(exc, model=cls)}") from None
    read = getattr(sink, "read_run_events", None)
    if not callable(read):
        raise PluginError(f"the installed 'file' sink ({cls.__module__}.{cls.__qualname__}) "
                          "cannot read events back")
    count = 0
    try:
        for event in read(run_id):
            out.write(event.model_dump_json() + "\n")
            count += 1
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise RunstreamError(f"cannot read the events of run {run_id}: {exc}") from None
    out.flush()
    if count == 0:
        raise RunNotFoundError(f"no events of run {run_id} in its event file")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = sys.stdout
    if args.version:
        from ._plugins import _version

        out.write(f"runstream {_version() or 'unknown'}\n")
        return 0
    try:
        if args.command == "run":
            return asyncio.run(run(args, out))
        if args.command == "worker":
            from ._cli_worker import worker

            return asyncio.run(worker(args, out))
        if args.command == "plugins":
            return _plugins(args, out)
        if args.command == "runs":
            if args.runs_command is None:
                return _fail("runs needs a subcommand: ls, show, events or cancel "
                             "(see runstream runs --help)")
            if args.runs_command == "events":
                return _run_events(args, out)
            return asyncio.run(_runs(args, out))
        parser.print_help(sys.stderr)
        return 2
    except RunstreamError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except StdoutClosed as exc:
        stdout_gone()
        log = exc.run_log
        print(f"run {log.run_id} {log.status}: {STDOUT_CLOSED}", file=sys.stderr)
        return EXIT_STDOUT_CLOSED
    except BrokenPipeError:
        stdout_gone()
        return EXIT_STDOUT_CLOSED


def entry() -> NoReturn:
    sys.exit(main())
