"""The peer benchmark's outputs: a markdown table on stdout and a PNG chart (matplotlib, if it
can be imported), both from the report dict that ``run.py`` writes to bench/results/peers.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Chart colours: runstream blue, the hand-written SSE baselines grey, frameworks orange.
BASELINES = ("fastapi_sse", "sse_starlette")


def _f(value: Any, fmt: str = "{:,.1f}") -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return fmt.format(value)


def table(report: dict[str, Any]) -> None:
    """One markdown table per concurrency level, one row per peer."""
    print(f"# {report['date']}, {report['cores']} cores, load avg {report['load_avg_start']:.2f}"
          f" -> {report.get('load_avg_end', float('nan')):.2f}; steady "
          f"{report['duration_s']:g} s, disconnects {report['disconnect_duration_s']:g} s "
          f"(fraction {report['disconnect_fraction']:g}), {report['clients']} client processes")
    for level, peers in report["results"].items():
        print(f"\n### {int(level):,} concurrent streams\n")
        print("| peer | server CPU ms/stream | streams/s | first event p50 / p99 ms | "
              "duration p99 ms | peak RSS MB | disconnect stops work (<= 100 ms) | errors |")
        print("|---|---|---|---|---|---|---|---|")
        base = peers.get("runstream", {}).get("steady")
        for name, result in peers.items():
            steady = result["steady"]
            cpu = steady["server_cpu_ms_per_stream"]
            ratio = ""
            if base and base["server_cpu_ms_per_stream"] and cpu and name != "runstream":
                ratio = f" ({cpu / base['server_cpu_ms_per_stream']:.2f}x runstream)"
            stop = result.get("disconnects", {}).get("stop", {})
            if "fraction_within_100ms" in stop:
                stops = (f"{100 * stop['fraction_within_100ms']:.0f}% of "
                         f"{stop['abandoned']} (p50 {_f(stop['stop_latency_ms']['p50'])} ms; "
                         f"ran on {stop['ran_to_the_end']}, "
                         f"still running {stop['still_running_after_10s']})")
            else:
                stops = stop.get("error", "-")
            errors = steady["failed"] + result.get("disconnects", {}).get("failed", 0)
            label = report["peers"].get(name, {}).get("label", name)
            print(f"| {label} | {_f(cpu, '{:.3f}')}{ratio} | {_f(steady['streams_per_s'])} | "
                  f"{_f(steady['ttfe_ms']['p50'])} / {_f(steady['ttfe_ms']['p99'])} | "
                  f"{_f(steady['duration_ms']['p99'])} | {_f(steady['rss_mb']['peak'])} | "
                  f"{stops} | {errors} |")
        targets(peers)
        for name, result in peers.items():
            for phase in ("steady", "disconnects"):
                for reason, examples in result.get(phase, {}).get("failure_examples",
                                                                  {}).items():
                    print(f"  failure {name} ({phase}) {reason}: {examples[:2]}")
    print("\nVersions:")
    for info in report["peers"].values():
        versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        print(f"- {info['label']}: {versions}")


def targets(peers: dict[str, Any]) -> None:
    """Issue 16's peer targets at this level: runstream ahead of every framework peer on CPU
    per stream and first event p99, and within 1.3x of the hand-written SSE apps' CPU."""
    own = peers.get("runstream", {}).get("steady")
    if not own or not own["server_cpu_ms_per_stream"]:
        return
    cpu, p99 = own["server_cpu_ms_per_stream"], own["ttfe_ms"]["p99"]
    print()
    for name, result in peers.items():
        other = result["steady"]
        if name == "runstream" or not other["server_cpu_ms_per_stream"]:
            continue
        ratio = cpu / other["server_cpu_ms_per_stream"]
        if name in BASELINES:
            verdict = "met" if ratio <= 1.3 else "MISSED"
            print(f"- vs {name}: runstream CPU per stream {ratio:.2f}x (target <= 1.3x: "
                  f"{verdict})")
        else:
            p99_ratio = p99 / other["ttfe_ms"]["p99"] if other["ttfe_ms"]["p99"] else 0.0
            verdict = "met" if ratio <= 1.0 and p99_ratio <= 1.0 else "MISSED"
            print(f"- vs {name}: runstream CPU per stream {ratio:.2f}x, first event p99 "
                  f"{p99_ratio:.2f}x (target: both <= 1x: {verdict})")


def chart(report: dict[str, Any], target: Path) -> None:
    """Server CPU per stream, first event p99 and peak RSS per peer, one bar per level."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("# no matplotlib here: chart skipped (uv run --with matplotlib python "
              "bench/peers/run.py --chart-only draws it from the JSON)")
        return
    levels = list(report["results"])
    names = [n for n in report["peers"] if any(n in report["results"][lv] for lv in levels)]
    panels = [("server CPU per stream, ms", lambda r: r["steady"]["server_cpu_ms_per_stream"]),
              ("first event p99, ms", lambda r: r["steady"]["ttfe_ms"]["p99"]),
              ("peak server RSS, MB", lambda r: r["steady"]["rss_mb"]["peak"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(14, 0.5 * len(names) * len(levels) + 2),
                             sharey=True)
    height = 0.8 / len(levels)
    for ax, (title, get) in zip(axes, panels, strict=True):
        for j, level in enumerate(levels):
            ys = [i + j * height for i in range(len(names))]
            values = []
            for name in names:
                result = report["results"][level].get(name)
                value = get(result) if result else None
                values.append(value if isinstance(value, (int, float)) and value == value else 0)
            colours = ["#3f51b5" if n == "runstream" else "#9e9e9e" if n in BASELINES
                       else "#ef8a3c" for n in names]
            ax.barh(ys, values, height=height * 0.95, color=colours,
                    alpha=1.0 if j == len(levels) - 1 else 0.55,
                    label=f"{int(level):,} streams")
            for y, v in zip(ys, values, strict=True):
                ax.text(v, y, f" {v:,.0f}" if v >= 100 else f" {v:.3g}", va="center",
                        fontsize=7)
        ax.set_title(title, fontsize=10)
    axes[0].set_yticks([i + 0.4 - height / 2 for i in range(len(names))])
    axes[0].set_yticklabels([report["peers"][n]["label"] for n in names], fontsize=8)
    axes[0].invert_yaxis()
    axes[-1].legend(fontsize=8, loc="lower right")
    lighter = ", ".join(f"{int(lv):,}" for lv in levels[:-1])
    fig.suptitle("The same chat over SSE, one uvicorn worker, "
                 f"{int(levels[-1]):,} concurrent streams (lower is better"
                 + (f"; lighter bars: {lighter} streams)" if lighter else ")"), fontsize=11)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110, metadata={"Software": None})
    plt.close(fig)
    print(f"# chart: {target}")
