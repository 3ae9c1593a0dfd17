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
``runstream_cwd``
    Runs the test in an empty temporary working directory, with runstream's environment
    variables (config file, plugin loading) unset, so files a run writes under ``.runstream/``
    and the config it looks up belong to the test alone.

Plain helpers, for tests with or without pytest:

:func:`serve`
    Serves an ASGI app (a FastAPI app with an SSE route, say) on a real uvicorn server on
    ``127.0.0.1`` and a free port, for the duration of a ``with`` block.
:func:`read_jsonl`
    The objects of a JSON-lines file, such as the file sink's event files.
:class:`RunLogStoreContract`
    The run log store contract as a test suite: subclass it with a ``store`` fixture to check
    that a store plugin behaves as runstream's own stores do.
:func:`reference_cycles`
    What the code in a ``with`` block left in reference cycles (objects of runstream's
    modules and of the ones you name): a run that is over should leave none.

The same helpers can be imported from ``runstream.testing`` outside pytest.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import threading
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from pydantic import PrivateAttr

from ._config import CONFIG_ENV, ComponentConfig, Config
from ._events import Event
from ._pipeline import AsyncPipeline
from ._plugins import BLOCK_ENV, LOAD_ENV, STRICT_ENV
from ._runlog import RunLog
from ._runtime import Runtime
from ._sinks import Sink
from ._store_contract import RunLogStoreContract

__all__ = [
    "CollectingSink",
    "RunLogStoreContract",
    "RunResult",
    "RuntimeFactory",
    "collecting_sink",
    "make_runtime",
    "memory_config",
    "read_jsonl",
    "reference_cycles",
    "run_pipeline",
    "runstream_cwd",
    "runstream_runtime",
    "serve",
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


def memory_config(*sinks: Mapping[str, Any] | ComponentConfig, **fields: Any) -> Config:
    """A :class:`~runstream.Config` with the memory run log store and ``sinks``, each written as
    in ``runstream.yaml`` (``{"type": "file", "path": "ev/{run_id}.jsonl"}``); ``fields`` are
    the other config fields, e.g. ``limits=Limits(cancel_grace_period=0.2)``."""
    return Config(run_log_store=ComponentConfig(type="memory"),
                  sinks=[s if isinstance(s, ComponentConfig) else ComponentConfig(**s)
                         for s in sinks], **fields)


def make_runtime(*plugins: object, sinks: Sequence[Sink] = (), entry_points: bool = False,
                 config: Config | None = None) -> Runtime:
    """A runtime with the memory store (or ``config``) and only ``plugins`` (plus built-ins)
    registered, or the installed plugins too with ``entry_points=True``. ``sinks`` are sink
    objects (a :class:`CollectingSink`) added to the configured ones."""
    cfg = config or memory_config()
    return Runtime(cfg, plugins=plugins, entry_points=entry_points, sinks=sinks)


async def run_pipeline(pipeline: AsyncPipeline, parameters: Mapping[str, Any] | None = None,
                       *, runtime: Runtime, run_id: str | None = None) -> RunResult:
    """Run ``pipeline`` to its end (failures included) and collect its events."""
    handle = pipeline.stream(parameters, run_id=run_id, config=runtime)
    events = [event async for event in handle]
    return RunResult(run_log=await handle.result(), events=events)


class RuntimeFactory(Protocol):
    """The type of the ``runstream_runtime`` fixture: :func:`make_runtime`'s signature."""

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


@pytest.fixture
def runstream_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run the test in an empty directory (yielded) with runstream's environment variables
    unset; the working directory and the variables are restored after the test."""
    monkeypatch.chdir(tmp_path)
    for var in (CONFIG_ENV, LOAD_ENV, BLOCK_ENV, STRICT_ENV):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path


def read_jsonl(path: str | os.PathLike[str]) -> list[Any]:
    """The JSON value of every non-blank line of ``path``, in order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@contextmanager
def serve(app: Any, *, start_timeout: float = 10.0, **config: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on ``127.0.0.1`` and a free port, in a thread.

    Yields the base URL (``http://127.0.0.1:PORT``) once the server accepts connections (its
    lifespan startup has run); on leaving the block the server shuts down gracefully and its
    thread is joined. ``config`` goes to :class:`uvicorn.Config` (defaults: ``log_level=
    "warning"``, ``lifespan="on"``). Needs uvicorn, which runstream itself does not depend on.
    Raises :class:`RuntimeError` if the server has not started within ``start_timeout`` s.
    """
    import uvicorn  # only tests that serve HTTP need it

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {"log_level": "warning", "lifespan": "on", **config}
    server = uvicorn.Server(uvicorn.Config(app, **options))

    def run() -> None:
        # uvicorn exits when the app's startup fails: said below, not as a thread traceback.
        with suppress(SystemExit):
            server.run(sockets=[sock])

    thread = threading.Thread(target=run, daemon=True, name="uvicorn-test-server")
    thread.start()
    try:
        # uvicorn offers a flag, not an event, for "started"; poll it with a deadline.
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {start_timeout} s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _described(obj: Any, modules: tuple[str, ...]) -> str | None:
    if isinstance(obj, types.FrameType | types.TracebackType):
        frame = obj if isinstance(obj, types.FrameType) else obj.tb_frame
        module = frame.f_globals.get("__name__", "")
        what = f"frame {frame.f_code.co_name}" if obj is frame else (
            f"traceback of {frame.f_code.co_name}")
        return f"{what} ({module})" if str(module).startswith(modules) else None
    module = type(obj).__module__
    return f"{module}.{type(obj).__qualname__}" if module.startswith(modules) else None


@contextmanager
def reference_cycles(*modules: str) -> Iterator[list[str]]:
    """The objects that the code in the ``with`` block left in reference cycles: those of
    runstream's modules and of ``modules`` (names or prefixes, ``"acme_sink"``), described,
    in a list filled when the block ends.

    A run's objects should be freed by reference counting the moment it is over; one cycle
    among them keeps them all (and what they hold) until the cyclic garbage collector's next
    full collection, seconds apart at a server's pace. Objects that existed before the block
    are never reported. Wait inside the block for what the run leaves running (an SSE run's
    pump ends after its response)::

        with reference_cycles("acme_sink") as cycles:
            await pipeline.execute(config=runtime)
        assert cycles == []
    """
    prefixes = ("runstream", *modules)
    found: list[str] = []
    gc.collect()
    # Held meanwhile: what existed before the block is never garbage here.
    before = gc.get_objects()
    saved = gc.get_debug()
    gc.set_debug(saved | gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(sorted(d for d in (_described(obj, prefixes) for obj in gc.garbage)
                            if d is not None))
    finally:
        gc.set_debug(saved)
        gc.garbage.clear()
        del before
