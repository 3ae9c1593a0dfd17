"""Executors run a pipeline's task steps; ``local`` runs them in this process's event loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from ._task import Task, TaskContext

__all__ = ["Executor", "LocalExecutor"]


class Executor(BaseModel):
    """Base class of executors: how a task step is run.

    Fields are the options of ``executor: {type: name, ...}`` in the config file. The engine
    walks the pipeline, emits events and keeps the run log; the executor only runs one task
    and returns its outputs.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True, allow_inf_nan=False)

    async def run_task(self, task: Task, ctx: TaskContext) -> Mapping[str, Any] | None:
        raise NotImplementedError


class LocalExecutor(Executor):
    """Runs each task in the current event loop (sync task types in a worker thread)."""

    async def run_task(self, task: Task, ctx: TaskContext) -> Mapping[str, Any] | None:
        return await task.execute(ctx)
