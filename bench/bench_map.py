"""Map over 1,000 items of a trivial async task, at most 100 at a time.

Target (issue 5): runstream's ``Map`` takes at most 2x the time of the same work written as
plain ``asyncio.gather`` with an ``asyncio.Semaphore(100)``, measured in the same run. The
task awaits ``asyncio.sleep(0)`` once and returns ``item * 2``, so the figures are the cost of
the machinery, not of the work: per item, runstream adds a branch scope, a run-log entry
(``StepLog`` + ``StepAttempt``), ``step.started`` / ``step.completed`` events and the result
collection. ``--io-ms`` adds a sleep per item to show the same comparison with some I/O.

    uv run python bench/bench_map.py [--items 1000] [--concurrency 100] [--reps 25] [--io-ms 0]

Repetitions alternate between the two in 5 rounds, so both see the same machine state.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import header, median, row, spread

TARGET_RATIO = 2.0


def make_work(io_s: float) -> Any:
    async def work(item: int) -> int:
        await asyncio.sleep(io_s)
        return item * 2
    return work


async def time_runstream(items: list[int], concurrency: int, reps: int, warmup: int,
                         io_s: float) -> tuple[list[float], list[float]]:
    """Per repetition: the whole ``execute()`` (run log store writes included) and the Map
    step alone (its run-log attempt's start..end)."""
    from runstream import AsyncPipeline, ComponentConfig, Config, Map, Runtime
    from runstream_async_python import AsyncPythonTask

    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    pipeline = AsyncPipeline("bench-map", [Map(
        "m", over="items", max_concurrency=concurrency, returns=["y"],
        branch=[AsyncPythonTask(name="work", function=make_work(io_s), returns=["y"])])])
    expected = [i * 2 for i in items]
    perf = time.perf_counter
    samples: list[float] = []
    node: list[float] = []
    try:
        for rep in range(warmup + reps):
            t0 = perf()
            log = await pipeline.execute({"items": items}, config=runtime)
            elapsed = perf() - t0
            attempt = log.steps["m"].attempts[0]
            if attempt.output_parameters["y"] != expected or attempt.end is None:
                raise SystemExit("runstream Map returned wrong results")
            if rep >= warmup:
                samples.append(elapsed * 1000)
                node.append((attempt.end - attempt.start).total_seconds() * 1000)
    finally:
        await runtime.aclose()
    return samples, node


async def bounded(sem: asyncio.Semaphore, work: Any, item: int) -> int:
    async with sem:
        result: int = await work(item)
        return result


async def time_gather(items: list[int], concurrency: int, reps: int, warmup: int,
                      io_s: float) -> list[float]:
    work = make_work(io_s)
    expected = [i * 2 for i in items]
    perf = time.perf_counter
    samples = []
    for rep in range(warmup + reps):
        t0 = perf()
        sem = asyncio.Semaphore(concurrency)
        results = await asyncio.gather(*(bounded(sem, work, i) for i in items))
        elapsed = perf() - t0
        if results != expected:
            raise SystemExit("gather returned wrong results")
        if rep >= warmup:
            samples.append(elapsed * 1000)
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--reps", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--io-ms", type=float, default=0.0,
                        help="sleep per item, in ms (default 0: a trivial task)")
    args = parser.parse_args()
    items = list(range(args.items))
    io_s = args.io_ms / 1000

    header(f"Map over {args.items} items, max_concurrency={args.concurrency}, "
           f"task: sleep({args.io_ms:g} ms) -> item * 2; medians of {args.reps} runs")
    ours: list[float] = []
    node: list[float] = []
    theirs: list[float] = []
    rounds = 5
    for _ in range(rounds):
        theirs += await time_gather(items, args.concurrency, args.reps // rounds or 1,
                                    args.warmup, io_s)
        total, alone = await time_runstream(items, args.concurrency, args.reps // rounds or 1,
                                            args.warmup, io_s)
        ours += total
        node += alone
    m_ours, m_node, m_theirs = median(ours), median(node), median(theirs)
    n = args.items
    row("asyncio.gather + Semaphore (baseline)", f"{m_theirs:.2f} ms",
        f"{m_theirs * 1000 / n:.1f} us/item  min..max {spread(theirs)}")
    row("runstream: the Map step", f"{m_node:.2f} ms",
        f"{m_node * 1000 / n:.1f} us/item  min..max {spread(node)}")
    row("runstream: whole execute() (memory store)", f"{m_ours:.2f} ms",
        f"{m_ours * 1000 / n:.1f} us/item  min..max {spread(ours)}")
    row("overhead per item: Map step", f"{(m_node - m_theirs) * 1000 / n:.1f} us")
    row("overhead per item: whole run", f"{(m_ours - m_theirs) * 1000 / n:.1f} us",
        "incl. the store's copy of 1,001 step records")
    for label, value in (("ratio Map step / baseline", m_node),
                         ("ratio whole run / baseline", m_ours)):
        ratio = value / m_theirs
        verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
        row(label, f"{ratio:.2f}x", f"{verdict} the target <= {TARGET_RATIO:g}x")


if __name__ == "__main__":
    asyncio.run(main())
