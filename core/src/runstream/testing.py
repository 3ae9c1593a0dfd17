"""Test helpers and pytest fixtures for people who write runstream plugins and pipelines.

Installed as a pytest plugin (entry point ``pytest11: runstream``), so these fixtures are
available in any project that has runstream installed:

``runstream_runtime``
    A factory: ``runstream_runtime(*plugins, sinks=[...], entry_points=False)`` returns a
    :class:`~runstream.Runtime` with the memory run log store and only the given plugins (plus
    runstream's built-ins) registered; it is closed after the test.
``collecting_sink``
    A fresh :class:`CollectingSink`: add it with ``sinks=[collecting_sink]`` and read
    ``collecting_sink.events`` after the run.
``run_pipeline``
    ``await run_pipeline(pipeline, parameters, runtime=...)`` runs a pipeline to its end and
    returns a :class:`RunResult` with every event, the task dicts and the run log.

The same helpers can be imported from ``runstream.testing`` outside pytest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest
from pydantic import PrivateAttr

from ._config import ComponentConfig, Config
from ._events import Event
from ._pipeline import AsyncPipeline
from ._runlog import RunLog
from ._runtime import Runtime
from ._sinks import Sink

__all__ = [
    "CollectingSink",
    "RunResult",
    "collecting_sink",
    "make_runtime",
    "run_pipeline",
    "runstream_runtime",
]


class CollectingSink(Sink):
    """A sink that keeps every event of every run it serves, shared across runs."""

    _events: list[Event] = PrivateAttr(default_factory=list)
    _opened: list[str] = PrivateAttr(default_factory=list)
    _closed: list[tuple[str, str]] = PrivateAttr(default_factory=list)

    def for_run(self) -> CollectingSink:
        return self  # one collector for all runs: that is the point

    @property
    def events(self) -> list[Event]:
        """Every event received, in arrival order."""
        return self._events

    @property
    def opened(self) -> list[str]:
        """Run ids in the order their runs were opened."""
        return self._opened

    @property
    def closed(self) -> list[tuple[str, str]]:
        """``(run_id, status)`` for every run closed."""
        return self._closed

    def events_of(self, run_id: str) -> list[Event]:
        return [e for e in self._events if e.run_id == run_id]

    async def open(self, run: RunLog) -> None:
        self._opened.append(run.run_id)

    async def send(self, event: Event) -> None:
        self._events.append(event)

    async def close(self, run: RunLog, status: str) -> None:
        self._closed.append((run.run_id, status))


@dataclass
class RunResult:
    """What a test usually wants to know about a finished run."""

    run_log: RunLog
    events: list[Event] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.run_log.status

    @property
    def data(self) -> list[dict[str, Any]]:
        """The dicts the tasks emitted (``step.event`` data), in order."""
        return [e.data for e in self.events if e.type == "step.event"]

    def types(self) -> list[str]:
        return [e.type for e in self.events]


def make_runtime(*plugins: object, sinks: Sequence[Sink] = (), entry_points: bool = False,
                 config: Config | None = None) -> Runtime:
    """A runtime with the memory store and only ``plugins`` (plus built-ins) registered."""
    cfg = config or Config(run_log_store=ComponentConfig(type="memory"))
    return Runtime(cfg, plugins=plugins, entry_points=entry_points, sinks=sinks)


async def run_pipeline(pipeline: AsyncPipeline, parameters: Mapping[str, Any] | None = None,
                       *, runtime: Runtime, run_id: str | None = None) -> RunResult:
    """Run ``pipeline`` to its end (failures included) and collect its events."""
    handle = pipeline.stream(parameters, run_id=run_id, config=runtime)
    events = [event async for event in handle]
    return RunResult(run_log=await handle.result(), events=events)


class RuntimeFactory(Protocol):
    def __call__(self, *plugins: object, sinks: Sequence[Sink] = ...,
                 entry_points: bool = ..., config: Config | None = ...) -> Runtime: ...


@pytest.fixture
async def runstream_runtime() -> AsyncIterator[RuntimeFactory]:
    """Factory of runtimes with only the given plugins; closes them after the test."""
    made: list[Runtime] = []

    def factory(*plugins: object, sinks: Sequence[Sink] = (), entry_points: bool = False,
                config: Config | None = None) -> Runtime:
        runtime = make_runtime(*plugins, sinks=sinks, entry_points=entry_points, config=config)
        made.append(runtime)
        return runtime

    yield factory
    for runtime in made:
        await runtime.aclose()


@pytest.fixture
def collecting_sink() -> CollectingSink:
    """A fresh :class:`CollectingSink`."""
    return CollectingSink()


@pytest.fixture(name="run_pipeline")
def _run_pipeline_fixture() -> Callable[..., Awaitable[RunResult]]:
    """:func:`run_pipeline` as a fixture."""
    return run_pipeline
