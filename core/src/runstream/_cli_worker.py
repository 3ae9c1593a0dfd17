"""``runstream worker``: be one of a remote executor's workers until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any, TextIO

from ._errors import ConfigError
from ._executor import Submission
from ._runlog import RunLog
from ._runtime import Runtime
from ._worker import run_submission

__all__: list[str] = []

logger = logging.getLogger("runstream")


def add_worker_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "worker", help="run submitted runs for a remote executor (e.g. taskiq)",
        description="Take runs from the config's remote executor (`executor: {type: taskiq, "
                    "...}`, runstream-taskiq) and run them here, appending their events to the "
                    "shared event log, until SIGTERM or Ctrl-C. Then it takes no new runs, "
                    "lets those in flight finish for --grace-period seconds and cancels the "
                    "rest (their clients get run.cancelled).")
    parser.add_argument("--config", metavar="FILE", help="the config file (the web "
                        "processes' one: same executor, event log and run log store)")
    parser.add_argument("--concurrency", type=int, default=10, metavar="N",
                        help="runs at once in this process (default 10)")
    parser.add_argument("--grace-period", type=float, default=30.0, metavar="SECONDS",
                        help="seconds runs in flight may take to finish on SIGTERM (default 30)")


async def worker(args: argparse.Namespace, out: TextIO) -> int:
    if args.concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.grace_period < 0:
        raise ConfigError(f"--grace-period must be 0 or more, got {args.grace_period}")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    async with Runtime(args.config) as runtime:
        executor = runtime.executor
        if not executor.remote:
            raise ConfigError(
                f"runstream worker needs a remote executor in the config (e.g. `executor: "
                f"{{type: taskiq, broker: \"redis://127.0.0.1:6379/1\"}}`, runstream-taskiq); "
                f"'{runtime.config.executor.type}' runs each run in the process that starts it")

        async def run(submission: Submission) -> RunLog:
            return await run_submission(submission, runtime)

        loop = asyncio.get_running_loop()
        serving = loop.create_task(executor.serve(
            runtime, run, concurrency=args.concurrency, grace_period=args.grace_period),
            name="runstream-worker")
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        out.write(f"runstream worker: {type(executor).__name__}, concurrency "
                  f"{args.concurrency}; SIGTERM or Ctrl-C stops it\n")
        out.flush()
        stopping = loop.create_task(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not serving.done():
                logger.info("runstream worker: stopping (grace period %g s)",
                            args.grace_period)
                serving.cancel()
            # A second SIGTERM while stopping changes nothing: the grace period holds.
            with contextlib.suppress(asyncio.CancelledError):
                await serving
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            stopping.cancel()
    return 0
