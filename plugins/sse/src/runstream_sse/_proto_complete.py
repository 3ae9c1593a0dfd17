"""``completion_response()``: an OpenAI ``stream: false`` request, answered with one
``chat.completion`` once the run has ended.

The run is started, followed, cancelled (its client gone) and failed exactly as a streamed one
(it *is* one: :class:`CompletionResponse` is a run response whose stream goes nowhere); the
records it would have framed are collected instead, and :func:`openai_completion` makes the
answer: ``200`` and the completion, or ``500`` and an OpenAI error object.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runstream import AsyncPipeline, Config, Pipeline, Runtime
from starlette.types import Message, Receive, Scope, Send

from ._owners import ANONYMOUS
from ._proto_openai import openai_completion
from ._serve import Outcome
from ._stream import OnDisconnect, RunResponse, run_response
from ._wire import end_data, failure_data

if TYPE_CHECKING:
    from runstream import EventRecord

    from ._feed import Feed
    from ._live import LiveRun

__all__ = ["CompletionResponse", "completion_response"]


class CompletionResponse(RunResponse):
    """A run whose records are collected, then answered as one OpenAI ``chat.completion``."""

    media_type = "application/json"

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        collected: list[EventRecord] = []
        self.collected = collected

        def collect(records: Sequence[EventRecord]) -> tuple[str, int]:
            collected.extend(records)
            return "", len(records)

        # A closure, not a bound method: self.framer = self._collect would be a reference
        # cycle, and the response (with the run's records) would wait for the cyclic GC.
        self.framer = collect
        streaming = False

        async def quiet(message: Message) -> None:
            # The run response's own 200 and stream go nowhere; its refusals (400, 503, 204)
            # go to the client as they are.
            nonlocal streaming
            if message["type"] == "http.response.start" and message["status"] == 200:
                streaming = True
            elif not streaming:
                await send(message)

        self.outcome: Outcome | None = None
        await super()._respond(scope, receive, quiet)
        if not streaming or self.outcome is Outcome.GONE:  # refused, or nobody to answer
            return
        status, body = openai_completion(self.collected, run_id=self.run_id,
                                         model=str(self.options.get("model", "runstream")))
        # ensure_ascii: a task's text may hold a lone surrogate, which UTF-8 cannot carry.
        payload = json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
            (b"x-run-id", self.run_id.encode())]})
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    async def _follow(self, receive: Receive, send: Send, feed: Feed, cursor: int,
                      primary: LiveRun | None = None) -> Outcome:
        self.outcome = await super()._follow(receive, send, feed, cursor, primary)
        return self.outcome

    async def _send_failure(self, send: Send, error: BaseException) -> None:
        self.collected.append((1, time.time(), "run.failed", None,
                               end_data(failure_data(error), None)))
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def completion_response(
    pipeline: AsyncPipeline | Pipeline,
    parameters: Mapping[str, Any] | None = None,
    *,
    config: Runtime | Config | str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    on_disconnect: OnDisconnect = "cancel",
    send_timeout: float | None = 30.0,
    owner: str | None = ANONYMOUS,
    options: Mapping[str, Any] | None = None,
) -> CompletionResponse:
    """Answer an OpenAI ``stream: false`` chat completion request: run ``pipeline`` like
    :func:`sse_response` (``protocol="openai"``; the same arguments, the same run, cancel and
    failure semantics, the same ``X-Run-Id``) and reply, once it has ended, with one
    ``chat.completion`` JSON (``200``), or an OpenAI error object with ``500`` for a failed or
    cancelled run. ``options``: the request's (``model`` is echoed)."""
    return run_response(CompletionResponse, pipeline, parameters, config, run_id,
                        on_disconnect, False, None, send_timeout, owner, "openai", options)
