"""The ``shout`` task type."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import Field
from runstream import Task, TaskContext


class ShoutTask(Task):
    """Streams the words of a parameter in capitals, then a ``done`` event with the result."""

    parameter: str = Field(default="text", description="Which parameter to shout.")
    delay: float = Field(default=0.0, ge=0, description="Seconds between words.")

    async def execute(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        words = str(ctx.parameter(self.parameter)).upper().split()
        for word in words:
            await ctx.emit({"type": "chunk", "text": word + " "})
            if self.delay:
                await asyncio.sleep(self.delay)
        shouted = " ".join(words)
        await ctx.emit({"type": "done", "shouted": shouted})
        return {"shouted": shouted}
