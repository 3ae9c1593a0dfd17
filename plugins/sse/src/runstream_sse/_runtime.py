"""The runtime for a ``config`` argument, as runstream's pipelines resolve it."""

from __future__ import annotations

import os

from runstream import Config, Runtime

ConfigArg = Runtime | Config | str | os.PathLike[str] | None


def resolve_runtime(config: ConfigArg) -> Runtime:
    """A Runtime as is; else a new Runtime for the config (a Config, a path, or None for the
    default lookup). Applications pass one Runtime (or use one :class:`SSE`) for their
    responses and their runs router: that is what makes them share runs."""
    if isinstance(config, Runtime):
        return config
    return Runtime(config)
