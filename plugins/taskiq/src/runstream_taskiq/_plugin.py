"""Entry point module of runstream-taskiq: registers the ``taskiq`` executor."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl


@hookimpl
def register_executors(register: Register) -> None:
    from ._executor import TaskiqExecutor

    register("taskiq", TaskiqExecutor)
