"""Entry point module of runstream-stdout: registers the ``stdout`` sink."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl

from ._sink import StdoutSink


@hookimpl
def register_sinks(register: Register) -> None:
    register("stdout", StdoutSink)
