"""Plot the figures of the last benchmark run (bench/results/*.txt) as SVGs for the docs.

    bash bench/run_all.sh && uv run python bench/bench_map.py | tee bench/results/map.txt
    uv run --with matplotlib python bench/plot.py          # writes docs/img/bench_*.svg

Each benchmark prints lines ``  <label>  <value> <unit>  (...)``; every figure line with a
value is plotted, one chart per benchmark, ratios (``x``) left out.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "img"
LINE = re.compile(
    r"^  (?P<label>\S.*?)\s{2,}(?P<value>[\d,]+(?:\.\d+)?)\s*(?P<unit>ms|/s|%)(?=\s|$)")
TITLES = {
    "execute": "Trivial one-step execute(): median latency (lower is better)",
    "streaming": "One step yielding 1M small dicts: events/s (higher is better)",
    "first_event": "First event of a 100k-event never-awaiting generator, % of total",
    "import": "Import time in a fresh interpreter (lower is better)",
    "map": "Map over 1,000 trivial items, max_concurrency=100 (lower is better)",
}


def figures(path: Path) -> tuple[list[tuple[str, float]], str]:
    rows: list[tuple[str, float]] = []
    unit = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## ") and "CPU" in line:
            break  # streaming prints the same figures again by CPU time
        m = LINE.match(line)
        if m and not m["label"].lstrip().startswith("ratio"):
            rows.append((m["label"].strip(), float(m["value"].replace(",", ""))))
            unit = m["unit"]
    return rows, unit


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    found = sorted(RESULTS.glob("*.txt"))
    if not found:
        print("no results: run bash bench/run_all.sh first", file=sys.stderr)
        return 1
    for path in found:
        rows, unit = figures(path)
        if not rows:
            continue
        labels = [label for label, _ in rows]
        values = [value for _, value in rows]
        colours = ["#9e9e9e" if ("runnable" in lbl or "baseline" in lbl or "bare" in lbl
                                 or "plan" in lbl or "python -c" in lbl) else "#3f51b5"
                   for lbl in labels]
        fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.4))
        ax.barh(labels[::-1], values[::-1], color=colours[::-1])
        if max(values) / max(min(values), 1e-9) > 50:
            ax.set_xscale("log")
        ax.set_xlabel({"ms": "milliseconds", "/s": "events per second", "%": "percent"}[unit])
        ax.set_title(TITLES.get(path.stem, path.stem), fontsize=11)
        for y, v in enumerate(values[::-1]):
            ax.text(v, y, f" {v:,.0f}" if v >= 1000 else f" {v:.3g}", va="center", fontsize=8)
        fig.tight_layout()
        target = OUT / f"bench_{path.stem}.svg"
        fig.savefig(target, format="svg", metadata={"Date": None})
        plt.close(fig)
        print(f"wrote {target.relative_to(ROOT)}")
    soak = RESULTS / "soak_sse.json"
    if soak.exists():
        plot_soak(plt, json.loads(soak.read_text(encoding="utf-8")))
    return 0


def plot_soak(plt: Any, result: dict[str, Any]) -> None:
    """Server RSS over each soak phase, runstream against the bare baseline app."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, phase in zip(axes, ("steady", "disconnects"), strict=True):
        for server, colour in (("runstream", "#3f51b5"), ("baseline", "#9e9e9e")):
            data = result["servers"].get(server, {}).get("phases", {}).get(phase)
            if not data:
                continue
            series = data["rss_series"]
            ys = [p[1] if isinstance(p, (list, tuple)) else p for p in series]
            xs = [p[0] if isinstance(p, (list, tuple)) else i for i, p in enumerate(series)]
            ax.plot(xs, ys, color=colour, label=server)
        ax.set_title(f"{result['streams']} streams, {phase}", fontsize=10)
        ax.set_xlabel("seconds")
    axes[0].set_ylabel("server RSS, MB")
    axes[0].set_ylim(bottom=0)
    axes[0].legend()
    fig.suptitle("SSE soak: server memory over time (flat = no growth run over run)",
                 fontsize=11)
    fig.tight_layout()
    target = OUT / "bench_soak_rss.svg"
    fig.savefig(target, format="svg", metadata={"Date": None})
    plt.close(fig)
    print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    raise SystemExit(main())
