"""How events look in ``pretty`` output: rich ``Text`` lines, never markup from event data."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.text import Text

if TYPE_CHECKING:
    from runstream import RunLog

#: Longest rendering of one value in a compact event line.
_VALUE_WIDTH = 60
#: Control characters that would move the cursor; shown escaped instead.
_CONTROL = {i: f"\\x{i:02x}" for i in range(32) if chr(i) not in "\n"} | {0x7F: "\\x7f"}
_CONTROL[ord("\t")] = "    "


def clean(text: str) -> str:
    """``text`` without terminal control characters (newlines kept)."""
    return text.translate(_CONTROL)


def short_id(run_id: str) -> str:
    """A short label for a run: the id itself if short, else its last 6 characters."""
    return run_id if len(run_id) <= 8 else run_id[-6:]


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr,
                                                           ensure_ascii=False)
    text = clean(text).replace("\n", "\\n")
    return text if len(text) <= _VALUE_WIDTH else text[:_VALUE_WIDTH - 1] + "…"


def compact(data: dict[str, Any]) -> str:
    """``{"type": "status", "status": "thinking"}`` -> ``status status=thinking``."""
    parts = [_value(data["type"])] if "type" in data else []
    parts += [f"{clean(str(k))}={_value(v)}" for k, v in data.items() if k != "type"]
    return " ".join(parts) or "{}"


def run_started(pipeline: str, run_id: str) -> Text:
    return Text.assemble(("▶ ", "bold blue"), (clean(pipeline), "bold"),
                         (f" started · run {run_id}", "dim"))


def step_started(step: str) -> Text:
    return Text.assemble(("  ▸ ", "cyan"), (clean(step), "cyan"), (" started", "dim"))


def step_completed(step: str, seconds: float) -> Text:
    return Text.assemble(("  ✓ ", "green"), (clean(step), "cyan"),
                         (f" completed in {duration(seconds)}", "dim"))


def step_failed(step: str, seconds: float | None, data: dict[str, Any]) -> Text:
    took = f" after {duration(seconds)}" if seconds is not None else ""
    error = f"{data.get('error_type', 'Error')}: {data.get('message', '')}"
    return Text.assemble(("  ✗ ", "bold red"), (clean(step), "cyan"), (f" failed{took}: ", "red"),
                         (clean(error), "red"))


def step_event(step: str | None, data: dict[str, Any]) -> Text:
    return Text.assemble(("    · ", "dim"), (f"{clean(step or '-')}: ", "dim"),
                         (compact(data), ""))


def text_line(line: str) -> Text:
    return Text.assemble(("    ", ""), (clean(line), ""))


def summary(run: RunLog, status: str, seconds: float | None, events: int,
            reason: str | None) -> list[Text]:
    """The last lines of a run: status, duration, steps, events; the error if it failed."""
    steps = list(run.steps.values())
    done = sum(1 for s in steps if s.status == "completed")
    if done == len(steps):
        counts = plural(done, "step")
    else:
        counts = f"{done} of {plural(len(steps), 'step')} completed"
    took = f" · {duration(seconds)}" if seconds is not None else ""
    facts = f"{took} · {counts} · {plural(events, 'event')}"
    name = clean(run.pipeline)
    if status == "completed":
        head = Text.assemble(("✓ ", "bold green"), (name, "bold"), (" completed", "green"),
                             (facts, "dim"))
        return [head]
    if status == "failed":
        where = f" in step '{clean(run.error.step)}'" if run.error and run.error.step else ""
        lines = [Text.assemble(("✗ ", "bold red"), (name, "bold"), (f" failed{where}", "red"),
                               (facts, "dim"))]
        if run.error is not None:
            lines.append(Text.assemble(("  error: ", "red"),
                                       (clean(f"{run.error.type}: {run.error.message}"), "red")))
        return lines
    why = f" ({clean(reason)})" if reason and reason != status else ""
    return [Text.assemble(("■ ", "bold yellow"), (name, "bold"), (f" {status}{why}", "yellow"),
                          (facts, "dim"))]
