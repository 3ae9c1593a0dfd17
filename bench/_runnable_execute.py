"""Child script for bench_execute.py: runs in bench/.venv-runnable (runnable==0.50.0).

Times the same trivial pipeline as runstream's: an AsyncPipeline with one AsyncPythonTask of a
no-op async function. runnable 0.50.0's AsyncPipeline has no ``execute()``; its documented entry
point for async pipelines is ``execute_streaming()``, drained here. Each run gets a fresh run id
(runnable refuses to reuse one). Writes {"samples_ms": [...]} to --out; stdout (runnable's run
summaries) is discarded by the parent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path


async def noop() -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--store", default="file-system")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    config_file = ""
    if args.store != "file-system":
        Path("runnable-bench.yaml").write_text(f"run-log-store:\n  type: {args.store}\n")
        config_file = "runnable-bench.yaml"

    from runnable import AsyncPipeline, AsyncPythonTask

    async def run() -> list[float]:
        samples = []
        for i in range(args.warmup + args.reps):
            pipeline = AsyncPipeline(name="bench",
                                     steps=[AsyncPythonTask(name="noop", function=noop)])
            t0 = time.perf_counter()
            async for _ in pipeline.execute_streaming(configuration_file=config_file,
                                                      run_id=f"bench-{i}"):
                pass
            elapsed = (time.perf_counter() - t0) * 1000
            if i >= args.warmup:
                samples.append(elapsed)
        return samples

    samples = asyncio.run(run())
    Path(args.out).write_text(json.dumps({"samples_ms": samples}))


if __name__ == "__main__":
    main()
