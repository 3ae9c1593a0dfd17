"""The configuration file (``runstream.yaml``): executor, run log store and sinks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import ConfigError
from ._validation import explain

__all__ = ["ComponentConfig", "Config", "Limits"]

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

    model_config = ConfigDict(extra="forbid", defer_build=True)

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
        description="Runs in flight per runtime; HTTP endpoints (runstream-sse) answer 503 with "
                    "`Retry-After` beyond it. `null`: no limit.")
    cancel_grace_period: float = Field(
        default=5.0, ge=0,
        description="Seconds a cancelled or timed-out step may take to stop before runstream "
                    "reports it and ends the run without it.")
    store_timeout: float = Field(
        default=2.0, gt=0,
        description="Seconds a run waits for the run log store to record its start before it "
                    "goes on without (the record is written again when the run ends).")
    store_save_timeout: float = Field(
        default=10.0, gt=0,
        description="Seconds a run waits for the store to save its final record; past it the "
                    "record goes to the error log (`runstream` logger) instead.")


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
    sinks: list[ComponentConfig] = Field(
        default_factory=list,
        description="Event sinks that receive every event of every run, e.g. `stdout`, `file`.",
    )
    limits: Limits = Field(default_factory=Limits,
                           description="Bounds for load and faults; see the Limits table.")

    @classmethod
    def from_yaml(cls, text: str, source: str = "<config>") -> Config:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from None
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
        return Path(env)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    path = find_config_file(explicit)
    return Config() if path is None else Config.from_file(path)
