"""Time to the first event from a generator that never awaits, as a fraction of the total.

Target (issue 2): with a 100,000-event async generator that never awaits, the consumer of
``execute_streaming()`` gets the first event within 5% of the time it takes to get them all
(events must reach the consumer while the task runs, not after it ends).

Baselines measured in the same run:
- a bare ``async for`` over the same generator (the floor: no pipeline at all);
- a queue bridge (runnable 0.50.0's ``execute_streaming``): the task pushes into an
  unbounded ``asyncio.Queue`` with ``put_nowait`` from a background task and the caller awaits
  ``queue.get()``. Re-created in-process here, so that only the hand-over design differs.

    uv run python bench/bench_first_event.py [--events 100000] [--reps 21]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import header, in_temp_dir, median, row, spread

TARGET = 0.05


async def backlog(n: int) -> AsyncGenerator[dict[str, Any], None]:
    """Never awaits: like replaying a backlog or a fast local model."""
    for i in range(n):
        yield {"type": "chunk", "i": i}


def bare(n: int, _runtime: Any) -> AsyncIterator[Any]:
    return backlog(n)


def execute_streaming(n: int, runtime: Any) -> AsyncIterator[Any]:
    from runstream import AsyncPipeline
    from runstream_async_python import AsyncPythonTask

    pipeline = AsyncPipeline("bench", [AsyncPythonTask(name="backlog", function=backlog)])
    return pipeline.execute_streaming(parameters={"n": n}, config=runtime)


async def plan_queue_bridge(n: int, _runtime: Any) -> AsyncGenerator[Any, None]:
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def run() -> None:
        try:
            async for item in backlog(n):
                queue.put_nowait(item)
        finally:
            await queue.put(None)

    task = asyncio.create_task(run())
    while (item := await queue.get()) is not None:
        yield item
    await task


CASES: dict[str, Callable[[int, Any], AsyncIterator[Any]]] = {
    "bare async for (floor)": bare,
    "execute_streaming()": execute_streaming,
    "asyncio.Queue bridge": plan_queue_bridge,
}


async def one(fn: Callable[[int, Any], AsyncIterator[Any]], n: int,
              runtime: Any) -> tuple[float, float]:
    perf = time.perf_counter
    t0 = perf()
    first = 0.0
    count = 0
    async for _ in fn(n, runtime):
        if count == 0:
            first = perf() - t0
        count += 1
    total = perf() - t0
    if count != n:
        raise SystemExit(f"got {count} events, expected {n}")
    return first, total


async def measure(n: int, reps: int) -> dict[str, list[tuple[float, float]]]:
    from runstream import ComponentConfig, Config, Runtime

    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in CASES}
    try:
        for fn in CASES.values():
            for _ in range(3):
                await one(fn, n, runtime)
        for _ in range(reps):
            for name, fn in CASES.items():
                gc.collect()
                out[name].append(await one(fn, n, runtime))
    finally:
        await runtime.aclose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=21)
    args = parser.parse_args()

    header("bench_first_event: first event from a never-awaiting generator")
    print(f"# {args.events:,} events per run; 3 warm-up runs per case, then the median of "
          f"{args.reps} interleaved runs; memory run log store")
    with in_temp_dir():
        results = asyncio.run(measure(args.events, args.reps))
    ok = True
    floor_total = median([t for _, t in results["bare async for (floor)"]])
    for name, samples in results.items():
        fractions = [f / t for f, t in samples]
        frac = median(fractions)
        first_ms = median([f for f, _ in samples]) * 1000
        total_ms = median([t for _, t in samples]) * 1000
        note = f"(first {first_ms:.3f} ms of {total_ms:.1f} ms; range {spread(fractions)})"
        if name == "execute_streaming()":
            ok = frac <= TARGET
            note += f" target <= {TARGET:.0%}: {'met' if ok else 'MISSED'}"
        row(f"{name}: first/total", f"{frac:.2%}", note)
        if name != "bare async for (floor)":
            row("  ratio total / bare total", f"{total_ms / (floor_total * 1000):.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
