"""The ``transcript`` sink."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import Field, PrivateAttr
from runstream import Event, RunLog, Sink


class TranscriptSink(Sink):
    """Writes the ``text`` of each chunk event of a run to ``<directory>/<run_id>.txt``.

    runstream gives each run its own copy of the sink, so ``_parts`` is per run.
    """

    directory: str = Field(default="transcripts", description="Where transcripts go.")
    _parts: list[str] = PrivateAttr(default_factory=list)

    async def send(self, event: Event) -> None:
        if event.type == "step.event" and event.data.get("type") == "chunk":
            self._parts.append(str(event.data.get("text", "")))

    async def close(self, run: RunLog, status: str) -> None:
        text = "".join(self._parts).strip() + f"\n[{status}]\n"
        path = Path(self.directory) / f"{run.run_id}.txt"
        await asyncio.to_thread(_write, path, text)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
