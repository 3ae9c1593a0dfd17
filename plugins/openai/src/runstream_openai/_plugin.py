"""Entry point module of runstream-openai: registers the ``openai-chat`` task type."""

from __future__ import annotations

from runstream.hookspecs import Register, hookimpl

from ._task import OpenAIChatTask


@hookimpl
def register_task_types(register: Register) -> None:
    """Register :class:`OpenAIChatTask` as ``openai-chat``."""
    register("openai-chat", OpenAIChatTask)
