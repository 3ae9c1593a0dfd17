"""Helpers shared by the composite-node and retry tests."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from runstream import TERMINAL_EVENT_TYPES, AsyncPipeline, Event, RunLog, Runtime


async def run_events(pipeline: AsyncPipeline, runtime: Runtime,
                     parameters: Mapping[str, Any] | None = None) -> tuple[list[Event], RunLog]:
    """Stream a run to its end: every event and the stored run log."""
    handle = pipeline.stream(parameters, config=runtime)
    events = [event async for event in handle]
    await handle.result()
    return events, await runtime.store.get(handle.run_id)


def terminal(events: list[Event]) -> list[str]:
    return [e.type for e in events if e.type in TERMINAL_EVENT_TYPES]


def task_dicts(events: list[Event], step: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type == "step.event" and e.step == step]


def of_type(events: list[Event], type_: str) -> list[Event]:
    return [e for e in events if e.type == type_]


def runstream_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("runstream")}
