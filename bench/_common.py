"""Shared helpers of the benchmarks: statistics, the machine header, temp dirs, runnable's venv.

Not a benchmark itself. Each ``bench_*.py`` imports it from its own directory.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RUNNABLE_VENV = BENCH_DIR / ".venv-runnable"
RUNNABLE_PYTHON = RUNNABLE_VENV / "bin" / "python"


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """min..max of the repetitions, to show how noisy the machine was."""
    return f"{min(values):.4g}..{max(values):.4g}"


def header(title: str) -> None:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 0
    print(f"# {title}")
    print(f"# {date.today().isoformat()}  Python {platform.python_version()}  "
          f"{platform.machine()}  {cores} cores  load avg {os.getloadavg()[0]:.2f}")


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<52} {value:>14}  {note}".rstrip())


@contextlib.contextmanager
def in_temp_dir() -> Iterator[Path]:
    """cd into a fresh temp dir (the sqlite store writes .runstream/ relative to cwd)."""
    old = Path.cwd()
    tmp = Path(tempfile.mkdtemp(prefix="runstream-bench-"))
    os.chdir(tmp)
    try:
        yield tmp
    finally:
        os.chdir(old)
        shutil.rmtree(tmp, ignore_errors=True)


def child_env() -> dict[str, str]:
    """Environment for child interpreters: bytecode caches allowed (as in any installed app),
    no runstream/runnable settings inherited from the caller."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith(("RUNSTREAM_", "RUNNABLE_"))}
    return env


def runnable_python(enabled: bool = True) -> Path | None:
    """The interpreter of bench/.venv-runnable (runnable==0.50.0), created on first use.

    Returns None (and says why) when it cannot be set up, so runstream's own figures still print.
    """
    if not enabled:
        return None
    if not RUNNABLE_PYTHON.exists():
        print("# setting up bench/.venv-runnable (runnable==0.50.0) ...", file=sys.stderr)
        result = subprocess.run(["bash", str(BENCH_DIR / "setup_runnable.sh")],
                                capture_output=True, text=True)
        if result.returncode != 0:
            print(f"# runnable baseline skipped: setup failed:\n{result.stderr}",
                  file=sys.stderr)
            return None
    return RUNNABLE_PYTHON


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "n/a"
