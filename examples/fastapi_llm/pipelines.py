"""Pipeline definitions for the FastAPI LLM streaming example: one in Python, one in YAML."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

from runstream import AsyncPipeline, Config, Retry, Runtime, load_pipeline
from runstream_async_python import AsyncPythonTask
from runstream_mock_llm import MockLLMTask
from runstream_openai import OpenAIChatTask

from examples.fastapi_llm.llm_mock import mock_llm_stream

#: The YAML twin of :func:`chat_pipeline`, built on the ``mock-llm`` task type.
CHAT_PIPELINE_YAML = Path(__file__).with_name("chat_pipeline.yaml")

#: The YAML chat pipeline on a real model (task type ``openai-chat``).
OPENAI_PIPELINE_YAML = Path(__file__).with_name("chat_pipeline_openai.yaml")

#: The models the example can use (``RUNSTREAM_EXAMPLE_MODEL``): the mock (default) or any
#: OpenAI-compatible server.
MODELS = ("mock", "openai")

#: The model ``OPENAI_MODEL`` names when it is not set.
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

#: The error the failure demo injects.
DEMO_ERROR = "RuntimeError: upstream model overloaded"


#: The reference a remote executor's workers load :func:`chat_pipeline` by.
REMOTE_CHAT_PIPELINE = "examples.fastapi_llm.pipelines:chat_pipeline"


def env_delay_scale() -> float:
    """``RUNSTREAM_EXAMPLE_DELAY_SCALE`` (default 1)."""
    raw = os.environ.get("RUNSTREAM_EXAMPLE_DELAY_SCALE") or "1"
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"RUNSTREAM_EXAMPLE_DELAY_SCALE must be a number, got {raw!r}") from None


def chat_pipeline(delay_scale: float | None = None) -> AsyncPipeline:
    """
    Single-task pipeline that streams LLM response.

    The mock_llm_stream function is an AsyncGenerator that yields
    events which flow through the pipeline to the SSE client. Its
    ``prompt`` argument is filled from the run's ``prompt`` parameter.
    ``delay_scale`` multiplies the mock model's delays (0: no waiting; None:
    ``RUNSTREAM_EXAMPLE_DELAY_SCALE``, default 1, so that workers that load it by reference,
    :data:`REMOTE_CHAT_PIPELINE`, follow their environment).
    """
    if delay_scale is None:
        delay_scale = env_delay_scale()
    function = (mock_llm_stream if delay_scale == 1.0
                else functools.partial(mock_llm_stream, delay_scale=delay_scale))
    return AsyncPipeline(
        name="chat",
        steps=[
            AsyncPythonTask(
                name="llm_response",
                function=function,
                returns=["full_text"],
            )
        ],
    )


def _scaled(task: MockLLMTask, delay_scale: float) -> MockLLMTask:
    if delay_scale == 1.0:
        return task
    # tokens_per_second 0 means no delay between words.
    rate = task.tokens_per_second / delay_scale if delay_scale > 0 else 0.0
    return task.model_copy(update={"thinking_delay": task.thinking_delay * delay_scale,
                                   "generating_delay": task.generating_delay * delay_scale,
                                   "tokens_per_second": rate})


def yaml_chat_pipeline(
    config: Runtime | Config | str | os.PathLike[str] | None = None,
    delay_scale: float = 1.0,
) -> AsyncPipeline:
    """The same chat pipeline, loaded from ``chat_pipeline.yaml`` (task type ``mock-llm``)."""
    pipeline = load_pipeline(CHAT_PIPELINE_YAML, config)
    if delay_scale == 1.0:
        return pipeline
    steps = [_scaled(step, delay_scale) if isinstance(step, MockLLMTask) else step
             for step in pipeline.steps]
    return AsyncPipeline(pipeline.name, steps=steps, on_failure=pipeline.on_failure,
                         description=pipeline.description)


def failing_chat_pipeline(fail_after: int, error: str = DEMO_ERROR,
                          delay_scale: float = 1.0) -> AsyncPipeline:
    """A chat pipeline whose model fails after ``fail_after`` words (the failure demo)."""
    return AsyncPipeline(
        name="chat-failing",
        steps=[
            _scaled(MockLLMTask(
                name="llm_response",
                fail_after=fail_after,
                fail_error=error,
                returns=["full_text"],
            ), delay_scale)
        ],
    )


def openai_settings(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The real model's settings from the environment: ``OPENAI_MODEL`` (default
    :data:`DEFAULT_OPENAI_MODEL`) and ``OPENAI_BASE_URL`` (default: OpenAI's). The API key stays
    in ``OPENAI_API_KEY``, read by the task when it runs."""
    env = os.environ if environ is None else environ
    return {"model": env.get("OPENAI_MODEL") or DEFAULT_OPENAI_MODEL,
            "base_url": env.get("OPENAI_BASE_URL") or None}


def openai_chat_pipeline(environ: Mapping[str, str] | None = None) -> AsyncPipeline:
    """The chat pipeline on an OpenAI-compatible server (``RUNSTREAM_EXAMPLE_MODEL=openai``).

    429 and 5xx answers are retried twice, after the server's ``Retry-After``. The earlier
    turns of a chat (the ``messages`` parameter of the protocol endpoints) go before the prompt.
    """
    return AsyncPipeline(name="chat-openai", steps=[OpenAIChatTask(
        name="llm_response", returns=["full_text"], retry=Retry(max_attempts=3),
        history_parameter="messages", **openai_settings(environ))])


def openai_yaml_chat_pipeline(
    config: Runtime | Config | str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AsyncPipeline:
    """``chat_pipeline_openai.yaml``, with ``model`` and ``base_url`` from the environment."""
    pipeline = load_pipeline(OPENAI_PIPELINE_YAML, config)
    settings = {k: v for k, v in openai_settings(environ).items() if v is not None}
    steps = [step.model_copy(update=settings) if isinstance(step, OpenAIChatTask) else step
             for step in pipeline.steps]
    return AsyncPipeline(pipeline.name, steps=steps, on_failure=pipeline.on_failure,
                         description=pipeline.description)
