"""Entry point module of runstream-sse: registers the ``sse`` sink through runstream's hooks."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl

from ._sink import SSESink


@hookimpl
def register_sinks(register: Register) -> None:
    register("sse", SSESink)
