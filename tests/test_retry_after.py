"""An error may carry the pause its server asked for (``retry_after``): Retry honours it."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from runstream import AsyncPipeline, Retry, Runtime
from runstream_async_python import AsyncPythonTask

from tests._nodes_util import of_type, run_events, terminal


class Busy(Exception):
    """An error that says how long to wait, like a 429 with Retry-After."""

    def __init__(self, retry_after: Any) -> None:
        super().__init__(f"busy, retry after {retry_after}")
        self.retry_after = retry_after


@pytest.mark.parametrize(("asked", "expected"), [
    (0.25, 0.25),       # longer than the policy's own pause: the server wins
    (0.01, 0.1),        # shorter: the policy's pause stands
    (99.0, 2.0),        # longer than max_delay: capped
    (None, 0.1), (-1.0, 0.1), (math.nan, 0.1), (math.inf, 0.1), (True, 0.1), ("5", 0.1),
])
def test_pause_honours_retry_after(asked: Any, expected: float) -> None:
    retry = Retry(backoff="fixed", delay=0.1, max_delay=2.0)
    assert retry.pause(1, Busy(asked)) == expected
    assert retry.pause(1) == 0.1


async def test_step_retrying_reports_the_servers_delay(runtime: Runtime) -> None:
    calls = 0

    async def model() -> AsyncGenerator[dict[str, Any], None]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Busy(0.2)
        yield {"type": "done", "full_text": "ok"}

    pipeline = AsyncPipeline("busy", [AsyncPythonTask(
        name="llm", function=model, returns=["full_text"],
        retry=Retry(max_attempts=2, delay=0.0, max_delay=5.0))])
    events, _ = await run_events(pipeline, runtime)
    assert terminal(events) == ["run.completed"]
    assert [e.data["delay"] for e in of_type(events, "step.retrying")] == [0.2]
