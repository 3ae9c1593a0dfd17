"""Entry point module of runstream-mock-llm: registers the ``mock-llm`` task type."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl

from ._task import MockLLMTask


@hookimpl
def register_task_types(register: Register) -> None:
    """Register :class:`MockLLMTask` as ``mock-llm``."""
    register("mock-llm", MockLLMTask)
