"""Entry point module: registers the task types through runstream's hooks."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl

from ._tasks import AsyncPythonTask, PythonTask


@hookimpl
def register_task_types(register: Register) -> None:
    register("async-python", AsyncPythonTask)
    register("python", PythonTask)
