"""The runtime for a ``config`` argument, as runstream's pipelines resolve it."""

from __future__ import annotations

import os

from runstream import Config, Runtime

ConfigArg = Runtime | Config | str | os.PathLike[str] | None


def resolve_runtime(config: ConfigArg) -> Runtime:
    """A Runtime as is; a Config built into a new Runtime; a path or None: the shared one."""
    if isinstance(config, Runtime):
        return config
    if isinstance(config, Config):
        return Runtime(config)
    return Runtime.shared(config)
