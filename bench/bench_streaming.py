"""Throughput of ``execute_streaming()`` (and ``stream()``) for one step yielding small dicts.

Target (issue 2): ``execute_streaming()`` >= 1,000,000 events/s for a step whose async generator
yields 1,000,000 small dicts. Baseline measured in the same run: a bare ``async for`` over the
same generator (no pipeline at all). Also reported: ``stream()``, which wraps each record in a
typed ``Event`` envelope.

    uv run python bench/bench_streaming.py [--events 1000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import header, in_temp_dir, median, ratio, row, spread

TARGET = 1_000_000


async def tokens(n: int) -> AsyncGenerator[dict[str, Any], None]:
    for i in range(n):
        yield {"type": "chunk", "i": i}


async def bare(n: int, _runtime: Any) -> int:
    count = 0
    async for _ in tokens(n):
        count += 1
    return count


def _pipeline() -> Any:
    from runstream import AsyncPipeline
    from runstream_async_python import AsyncPythonTask

    return AsyncPipeline("bench", [AsyncPythonTask(name="tokens", function=tokens)])


async def execute_streaming(n: int, runtime: Any) -> int:
    count = 0
    async for _ in _pipeline().execute_streaming(parameters={"n": n}, config=runtime):
        count += 1
    return count


async def stream(n: int, runtime: Any) -> int:
    count = 0
    async for event in _pipeline().stream(parameters={"n": n}, config=runtime):
        if event.type == "step.event":
            count += 1
    return count


CASES: dict[str, Callable[[int, Any], Awaitable[int]]] = {
    "bare async for (baseline)": bare,
    "execute_streaming()": execute_streaming,
    "stream() (Event envelopes)": stream,
}


async def measure(n: int, rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """events/s per round and case: by wall clock, and by this process's CPU time (steadier
    when neighbours share the two cores; everything here runs on one thread)."""
    from runstream import ComponentConfig, Config, Runtime

    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    wall: dict[str, list[float]] = {name: [] for name in CASES}
    cpu: dict[str, list[float]] = {name: [] for name in CASES}
    try:
        for fn in CASES.values():  # warm-up
            await fn(min(n, 100_000), runtime)
        # Interleave the cases so that a noisy neighbour hurts them all alike.
        for _ in range(rounds):
            for name, fn in CASES.items():
                gc.collect()
                t0, c0 = time.perf_counter(), time.process_time()
                count = await fn(n, runtime)
                elapsed, used = time.perf_counter() - t0, time.process_time() - c0
                if count != n:
                    raise SystemExit(f"{name}: got {count} events, expected {n}")
                wall[name].append(n / elapsed)
                cpu[name].append(n / used)
    finally:
        await runtime.aclose()
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    header("bench_streaming: one step yielding small dicts, events/s")
    print(f"# {args.events:,} events per run; one warm-up run (100k) per case, then the median "
          f"of {args.rounds} interleaved rounds; memory run log store; the target is judged "
          "by wall clock")
    with in_temp_dir():
        wall, cpu = asyncio.run(measure(args.events, args.rounds))
    ok = True
    for clock, rates in (("wall clock", wall), ("CPU time", cpu)):
        print(f"## events/s by {clock}")
        base = median(rates["bare async for (baseline)"])
        for name, values in rates.items():
            med = median(values)
            note = f"(range {spread(values)}/s)"
            if name == "execute_streaming()":
                met = med >= TARGET
                ok &= met or clock == "CPU time"
                note += f" target >= {TARGET:,}/s: {'met' if met else 'MISSED'}"
            row(name, f"{med:,.0f}/s", note)
            if name != "bare async for (baseline)":
                row(f"  ratio {name.split()[0]} / bare async for", ratio(med, base),
                    f"({1e6 / med - 1e6 / base:.3f} us of overhead per event)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
