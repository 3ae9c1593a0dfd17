"""Latency of ``await AsyncPipeline.execute()`` for a trivial one-step pipeline.

Targets (issue 2): median <= 0.25 ms with the ``memory`` run log store, <= 1 ms with the default
``sqlite`` store. Baseline measured in the same run: runnable==0.50.0 (the library the user's
plan was written for) running the same pipeline in bench/.venv-runnable, in a child process.

    uv run python bench/bench_execute.py [--reps 2000] [--warmup 200] [--no-runnable]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    child_env,
    header,
    in_temp_dir,
    median,
    ratio,
    row,
    runnable_python,
    spread,
)

TARGETS_MS = {"memory": 0.25, "sqlite": 1.0}


async def noop() -> None:
    return None


async def time_runstream(store: str, reps: int, warmup: int) -> list[float]:
    from runstream import AsyncPipeline, ComponentConfig, Config, Runtime
    from runstream_async_python import AsyncPythonTask

    config = Config() if store == "sqlite" else Config(
        run_log_store=ComponentConfig(type=store))
    runtime = Runtime(config)
    pipeline = AsyncPipeline("bench", [AsyncPythonTask(name="noop", function=noop)])
    perf = time.perf_counter
    try:
        for _ in range(warmup):
            await pipeline.execute(config=runtime)
        samples = []
        for _ in range(reps):
            t0 = perf()
            await pipeline.execute(config=runtime)
            samples.append((perf() - t0) * 1000)
    finally:
        await runtime.aclose()
    return samples


def time_runnable(python: Path, store: str, reps: int, warmup: int) -> list[float] | None:
    with tempfile.TemporaryDirectory(prefix="runnable-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [str(python), str(BENCH_DIR / "_runnable_execute.py"), "--reps", str(reps),
               "--warmup", str(warmup), "--store", store, "--out", str(out)]
        # runnable prints a run summary per run on stdout: discard it, results go to `out`.
        result = subprocess.run(cmd, cwd=tmp, env=child_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            print(f"# runnable ({store}) failed:\n{result.stderr[-2000:]}", file=sys.stderr)
            return None
        samples: list[float] = json.loads(out.read_text())["samples_ms"]
        return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2000, help="timed runs per runstream store")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--runnable-reps", type=int, default=60)
    parser.add_argument("--no-runnable", action="store_true")
    args = parser.parse_args()

    header("bench_execute: trivial one-step AsyncPipeline.execute() latency")
    print(f"# runstream: {args.warmup} warm-up runs, then the median of {args.reps} timed runs "
          f"per store; runnable: 5 warm-up + median of {args.runnable_reps}, in a child process")
    results: dict[str, float] = {}
    ok = True
    with in_temp_dir():
        for store in ("memory", "sqlite"):
            samples = asyncio.run(time_runstream(store, args.reps, args.warmup))
            results[store] = med = median(samples)
            met = med <= TARGETS_MS[store]
            ok &= met
            row(f"runstream execute(), {store} store", f"{med:.3f} ms",
                f"(target <= {TARGETS_MS[store]} ms: {'met' if met else 'MISSED'}; "
                f"p90 {sorted(samples)[int(len(samples) * 0.9)]:.3f} ms)")

    python = runnable_python(not args.no_runnable)
    if python is not None:
        for store, ours in (("file-system", "sqlite"), ("buffered", "memory")):
            samples_r = time_runnable(python, store, args.runnable_reps, 5)
            if samples_r is None:
                continue
            med = median(samples_r)
            row(f"runnable 0.50.0, {store} run log store", f"{med:.3f} ms",
                f"(range {spread(samples_r)} ms)")
            row(f"  ratio runnable / runstream ({ours})", ratio(med, results[ours]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
