"""Entry point module of runstream-taskiq: registers the ``taskiq`` executor."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl


@hookimpl
def register_executors(register: Register) -> None:
    # By reference: taskiq (and redis-py) are imported only by a process whose config picks
    # `taskiq`.
    register("taskiq", "runstream_taskiq._executor:TaskiqExecutor")
