"""Entry point module of runstream-stdout: registers the ``stdout`` sink."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl


@hookimpl
def register_sinks(register: Register) -> None:
    # By reference: rich is imported only by a process whose config has a `stdout` sink.
    register("stdout", "runstream_stdout._sink:StdoutSink")
