"""The runtime: loaded plugins, the validated config, the executor and the run log store."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ._config import Config, find_config_file
from ._errors import ConfigError, RunIdError, RunstreamError
from ._eventlog import EventLog
from ._executor import Executor
from ._leases import Leases
from ._plugins import Plugins, load_plugins
from ._recorder import Recorder
from ._sinks import Sink
from ._store import RunLogStore
from ._threads import TaskThreads
from ._validation import explain
from ._watchdog import LoopWatch

__all__ = ["Runtime", "State"]

logger = logging.getLogger("runstream")

M = TypeVar("M", bound=BaseModel)


def _build(cls: type[M], options: dict[str, Any], where: str) -> M:
    try:
        return cls.model_validate(options)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {explain(exc, model=cls)}") from None


class State:
    """Per-runtime state of plugins and applications: attributes set freely, read back
    (``runtime.state.sse_runs = ...``), as starlette's ``app.state``. Each plugin uses names
    of its own (prefixed with its name). A runtime's state lives and dies with the runtime."""

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {})

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"runtime state has no {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._values[name]
        except KeyError:
            raise AttributeError(f"runtime state has no {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return f"State({', '.join(sorted(self._values))})"


class Runtime:
    """Everything runs share: plugins, config, executor, run log store and configured sinks.

    Build one per application and pass it to every run (``config=runtime``): it loads plugins
    once and keeps the run log store's connection open. Its owner closes it, with
    :meth:`aclose` or ``async with Runtime(...) as runtime:``. A run given a config (or none)
    instead builds a runtime of its own and closes it when it ends: simple, but it loads the
    plugins for every run. Runs never share anything but these services through it; plugins
    keep per-runtime state in :attr:`state`. There is no hidden shared runtime.
    """

    def __init__(
        self,
        config: Config | str | os.PathLike[str] | None = None,
        *,
        plugins: Sequence[object] = (),
        entry_points: bool = True,
        strict_plugins: bool | None = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        """``config``: a :class:`Config`, a config file path, or ``None`` for the default lookup
        (``$RUNSTREAM_CONFIGURATION_FILE``, then ``./runstream.yaml``). ``plugins``: extra plugin
        modules or objects to register (besides entry points unless ``entry_points=False``).
        ``sinks``: sink instances that receive every run's events, after the config's sinks."""
        if isinstance(config, Config):
            self.config = config
            self.config_file: Path | None = None
        else:
            self.config_file = find_config_file(config)
            self.config = Config() if self.config_file is None else Config.from_file(
                self.config_file)
        source = str(self.config_file or "config")
        self.plugins: Plugins = load_plugins(plugins, entry_points=entry_points,
                                             strict=strict_plugins)
        cfg = self.config
        executor_cls = self.plugins.executors.get_for_config(cfg.executor.type,
                                                             f"{source}: executor")
        self.executor: Executor = _build(
            executor_cls, cfg.executor.options(),
            f"{source}: executor (type: {cfg.executor.type})")
        store_cls = self.plugins.run_log_stores.get_for_config(cfg.run_log_store.type,
                                                              f"{source}: run_log_store")
        self.store: RunLogStore = _build(
            store_cls, cfg.run_log_store.options(),
            f"{source}: run_log_store (type: {cfg.run_log_store.type})")
        log_cls = self.plugins.event_logs.get_for_config(cfg.event_log.type,
                                                         f"{source}: event_log")
        #: Where the events of runs that clients follow live (see :class:`EventLog`).
        self.event_log: EventLog = _build(
            log_cls, cfg.event_log.options(),
            f"{source}: event_log (type: {cfg.event_log.type})")
        self.executor.check_services(self.event_log, self.store)
        self.sinks: list[tuple[str, Sink]] = []
        for i, entry in enumerate(cfg.sinks):
            where = f"{source}: sinks[{i}]"
            cls = self.plugins.sinks.get_for_config(entry.type, where)
            label = f"'{entry.type}' (sinks[{i}])"
            self.sinks.append((label, _build(cls, entry.options(),
                                             f"{where} (type: {entry.type})")))
        for i, sink in enumerate(sinks):
            if not isinstance(sink, Sink):
                raise ConfigError(f"sinks= item {i} is a {type(sink).__name__}, not a Sink")
            self.sinks.append((f"{type(sink).__name__} (sinks= item {i})", sink))
        for _label, sink in self.sinks:
            # A sink that writes to the event log (runstream-sse's ``sse``) gets this one.
            attach = getattr(sink, "attach_event_log", None)
            if callable(attach):
                attach(self.event_log)
        #: Per-runtime state of plugins (see :class:`State`).
        self.state = State()
        #: Saves runs' final records, retrying in the background what the store did not take.
        self.recorder = Recorder(self.store, self.config.limits)
        #: Ids of the runs in flight in this runtime: claimed before the store is asked, so a
        #: reused id is refused even while the store is slow (see ``claim_run_id``).
        self._claimed: set[str] = set()
        #: This process's lease in the store, and the search for runs of dead processes.
        self.leases = Leases(self.store, self.config.limits, self.runs_in_flight)
        #: Threads for sync tasks (not the loop's default executor: see runstream._threads).
        self.task_threads = TaskThreads(self.config.limits.task_threads)
        #: Watches the event loops that run runs for tasks that block them.
        self.loop_watch = LoopWatch(self.config.limits.loop_block_warning)
        self._recovered = False
        self._hooks = {name: self.plugins.has_impls(name) for name in
                       ("before_run", "after_run", "before_node_run", "after_node_run",
                        "on_node_error")}

    async def recover_abandoned(self) -> list[str]:
        """Mark runs left ``running`` by a process that has died (killed, crashed, its
        container gone) as ``abandoned``; returns their ids. A process is dead when its pid on
        this host is gone (or a zombie), or when its lease in the store ran out (see
        ``limits.process_lease``); runs whose lease has not run out yet are checked again when
        it does. Every runtime does this once, before its first run; call it yourself at
        application start to do it earlier."""
        self._recovered = True
        return await self.leases.recover()

    async def ensure_recovered(self) -> None:
        if not self._recovered:
            self._recovered = True
            try:
                await self.recover_abandoned()
            except RunstreamError as exc:
                logger.warning("could not check for abandoned runs: %s", exc)

    def claim_run_id(self, run_id: str) -> None:
        """Claim ``run_id`` for a run starting in this runtime; RunIdError if a run in flight
        here has it. The run log store's exclusive create claims it across processes."""
        if run_id in self._claimed:
            raise RunIdError(f"run id '{run_id}' is already used by a run in flight; pick "
                             "another or omit it")
        self._claimed.add(run_id)

    def release_run_id(self, run_id: str) -> None:
        self._claimed.discard(run_id)

    def runs_in_flight(self) -> int:
        """How many runs of this runtime are in flight (started, not yet ended)."""
        return len(self._claimed)

    def has_hook(self, name: str) -> bool:
        return self._hooks[name]

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def start(self) -> None:
        """Connect to the shared services now (the event log), so that an unreachable server is
        a clear error at application start rather than at the first request. ``async with
        Runtime(...)`` calls it; without it they connect on first use."""
        await self.event_log.start()

    @property
    def reconnect_grace(self) -> float:
        """``limits.reconnect_grace``, or its default for this runtime's event log."""
        grace = self.config.limits.reconnect_grace
        if grace is not None:
            return grace
        return 5.0 if self.event_log.shared else 0.0

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Wait (at most ``limits.store_save_timeout``) for final records still being saved,
        then close the run log store. Runs must not use the runtime afterwards."""
        await self.recorder.aclose(self.config.limits.store_save_timeout)
        await self.leases.aclose()
        try:
            await self.executor.aclose()
            await self.event_log.close()
        finally:
            await self.store.close()
        self.task_threads.close()


def resolve_runtime(config: Runtime | Config | str | os.PathLike[str] | None) -> Runtime:
    """``config`` if it is a Runtime; else a new Runtime for it (a :class:`Config`, a config
    file path, or ``None`` for the default lookup), which the caller owns and closes."""
    if isinstance(config, Runtime):
        return config
    return Runtime(config)
