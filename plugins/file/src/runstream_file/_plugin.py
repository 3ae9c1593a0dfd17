"""Entry point module of runstream-file: registers the ``file`` sink."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl

from ._sink import FileSink


@hookimpl
def register_sinks(register: Register) -> None:
    register("file", FileSink)
