"""Pipeline definitions for the FastAPI LLM streaming example: one in Python, one in YAML."""

from __future__ import annotations

import os
from pathlib import Path

from runstream import AsyncPipeline, Config, Runtime, load_pipeline
from runstream_async_python import AsyncPythonTask
from runstream_mock_llm import MockLLMTask

from examples.fastapi_llm.llm_mock import mock_llm_stream

#: The YAML twin of :func:`chat_pipeline`, built on the ``mock-llm`` task type.
CHAT_PIPELINE_YAML = Path(__file__).with_name("chat_pipeline.yaml")

#: The error the failure demo injects.
DEMO_ERROR = "RuntimeError: upstream model overloaded"


def chat_pipeline() -> AsyncPipeline:
    """
    Single-task pipeline that streams LLM response.

    The mock_llm_stream function is an AsyncGenerator that yields
    events which flow through the pipeline to the SSE client. Its
    ``prompt`` argument is filled from the run's ``prompt`` parameter.
    """
    return AsyncPipeline(
        name="chat",
        steps=[
            AsyncPythonTask(
                name="llm_response",
                function=mock_llm_stream,
                returns=["full_text"],
            )
        ],
    )


def yaml_chat_pipeline(
    config: Runtime | Config | str | os.PathLike[str] | None = None,
) -> AsyncPipeline:
    """The same chat pipeline, loaded from ``chat_pipeline.yaml`` (task type ``mock-llm``)."""
    return load_pipeline(CHAT_PIPELINE_YAML, config)


def failing_chat_pipeline(fail_after: int, error: str = DEMO_ERROR) -> AsyncPipeline:
    """A chat pipeline whose model fails after ``fail_after`` words (the failure demo)."""
    return AsyncPipeline(
        name="chat-failing",
        steps=[
            MockLLMTask(
                name="llm_response",
                fail_after=fail_after,
                fail_error=error,
                returns=["full_text"],
            )
        ],
    )
