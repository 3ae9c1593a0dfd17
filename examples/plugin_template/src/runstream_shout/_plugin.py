"""The entry point module: runstream calls these hook implementations at start-up."""

from __future__ import annotations

from typing import Any

from runstream import hookimpl

from ._sink import TranscriptSink
from ._task import ShoutTask


@hookimpl
def register_task_types(register: Any) -> None:
    register("shout", ShoutTask)


@hookimpl
def register_sinks(register: Any) -> None:
    register("transcript", TranscriptSink)
