"""The configuration file (``runstream.yaml``): executor, run log store and sinks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import ConfigError
from ._validation import explain
from ._yaml_load import load_yaml

__all__ = ["ComponentConfig", "Config", "Limits", "ParametersConfig"]

CONFIG_ENV = "RUNSTREAM_CONFIGURATION_FILE"
DEFAULT_CONFIG_FILE = "runstream.yaml"


class ComponentConfig(BaseModel):
    """A plugin component chosen by ``type``; every other key is an option of that component,
    validated against the component's own model when the runtime is built."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    type: str = Field(description="The registered name of the component.")

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Limits(BaseModel):
    """Bounds that keep a process healthy under load and faults (``limits:`` in the config)."""

    model_config = ConfigDict(extra="forbid", defer_build=True, allow_inf_nan=False)

    max_event_bytes: int | None = Field(
        default=1024 * 1024, ge=1,
        description="Largest event a task may emit, as JSON in UTF-8 bytes (default 1 MiB); a "
                    "bigger one fails its step with a clear error instead of being buffered. "
                    "Events are sized by a cheap estimate and serialised only when it comes "
                    "near the limit. Every buffer of a run holds at least one event, so this "
                    "is also what one event can add to them. `null`: no limit.")
    max_queued_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1,
        description="Bytes of events (their estimated JSON size) a run may queue for its reader "
                    "(`execute_streaming()`, `stream()`, an HTTP response) before its tasks "
                    "wait, as they do at 1,024 queued events: with a reader that stops, the "
                    "run's queue holds at most this much plus one event. Default 8 MiB.")
    max_concurrent_runs: int | None = Field(
        default=None, ge=1,
        description="Runs that HTTP endpoints (runstream-sse) keep in flight at once; they "
                    "answer 503 with `Retry-After` beyond it. Counted per process with the "
                    "`memory` event log, across every process that shares a shared one "
                    "(`redis`). `null`: no limit.")
    reconnect_grace: float | None = Field(
        default=None, ge=0, le=3600,
        description="Seconds a run whose last client went away (with `on_disconnect=\"cancel\"`) "
                    "keeps running for a client to resume it (`Last-Event-ID`, on any process) "
                    "before it is cancelled. An explicit Stop (`POST /runs/{id}/cancel`) "
                    "cancels at once. `null` (default): 5 with a shared event log, else 0.")
    cancel_grace_period: float = Field(
        default=5.0, ge=0,
        description="Seconds a cancelled or timed-out step may take to stop before runstream "
                    "reports it and ends the run without it.")
    task_threads: int = Field(
        default=32, ge=1,
        description="Threads that run sync tasks (`PythonTask`, task types with `run()`), "
                    "apart from the event loop's default executor. A sync step of a cancelled "
                    "run keeps its thread until its function returns; a step that has to wait "
                    "for a thread says so in a `run.warning`.")
    loop_block_warning: float | None = Field(
        default=1.0, gt=0,
        description="Seconds a task may block the event loop (e.g. `time.sleep` in an async "
                    "function) before runstream logs a warning naming its step, and adds one "
                    "to its run (`run.warning`). `null`: do not watch.")
    store_timeout: float = Field(
        default=2.0, gt=0,
        description="Seconds a run waits for the run log store to record its start before it "
                    "goes on without (the record is written again when the run ends).")
    store_save_timeout: float = Field(
        default=10.0, gt=0,
        description="Seconds a run waits for the store's first attempt to save its final "
                    "record before it ends without; the record is then saved in the background.")
    process_lease: float = Field(
        default=30.0, gt=0, le=86_400,
        description="Seconds a process's lease on its runs lasts in the run log store; it is "
                    "renewed every third of that while the process has runs in flight. Runs "
                    "of a process whose lease ran out (killed, its container gone) are marked "
                    "`abandoned` by any process sharing the store.")
    store_retry_period: float = Field(
        default=600.0, gt=0,
        description="Seconds runstream keeps retrying to save a run's final record that the "
                    "store did not take (locked, failing), with growing pauses; past it the run "
                    "id and status are logged as lost (never the parameters).")


class ParametersConfig(BaseModel):
    """Where runs read parameters from, and which are secret (``parameters:`` in the config)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    environment: bool | list[str] = Field(
        default_factory=list,
        description="`RUNSTREAM_PRM_<name>` variables every run reads: a list of names, or "
                    "`true` for all. Default: none (a run asks with `environment=`; "
                    "`runstream run` reads them all).")
    secret: list[str] = Field(
        default_factory=list,
        description="Parameter names whose values tasks receive but runstream never records "
                    "or emits (shown as `**********`); see docs/security.md.")


class Config(BaseModel):
    """Contents of ``runstream.yaml``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    executor: ComponentConfig = Field(
        default_factory=lambda: ComponentConfig(type="local"),
        description="How task steps run. Built in: `local`.",
    )
    run_log_store: ComponentConfig = Field(
        default_factory=lambda: ComponentConfig(type="sqlite"),
        description="Where run logs are kept. Built in: `sqlite` (default), `file-system`, "
                    "`memory`.",
    )
    event_log: ComponentConfig = Field(
        default_factory=lambda: ComponentConfig(type="memory"),
        description="Where the events of runs that clients follow are kept for replay, and "
                    "how cancel signals and run slots are shared. Built in: `memory` (this "
                    "process only); `redis` with runstream-redis (every process sharing it).",
    )
    sinks: list[ComponentConfig] = Field(
        default_factory=list,
        description="Event sinks that receive every event of every run, e.g. `stdout`, `file`.",
    )
    limits: Limits = Field(default_factory=Limits,
                           description="Bounds for load and faults; see the Limits table.")
    parameters: ParametersConfig = Field(
        default_factory=ParametersConfig,
        description="Environment parameters every run reads, and secret parameter names.")

    @classmethod
    def from_yaml(cls, text: str, source: str = "<config>") -> Config:
        data = load_yaml(text, source, ConfigError)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: the config must be a mapping with keys executor, run_log_store, "
                f"sinks; got a {type(data).__name__}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {explain(exc, model=cls)}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Config:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        return cls.from_yaml(text, str(path))


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """``explicit`` > ``$RUNSTREAM_CONFIGURATION_FILE`` > ``./runstream.yaml`` if it exists."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            why = "is a directory" if path.is_dir() else "does not exist"
            raise ConfigError(f"${CONFIG_ENV} names the config file {env}, which {why}; "
                              "fix the path or unset the variable")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    path = find_config_file(explicit)
    return Config() if path is None else Config.from_file(path)
