"""runstream-openai: the ``openai-chat`` task type, a chat completion streamed from any
OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM).

Use :class:`OpenAIChatTask` in Python pipelines, or ``type: openai-chat`` in YAML pipelines.
"""

from ._errors import ModelRequestError, ModelServerError, ModelUnreachableError
from ._stream import REASONING_FIELDS
from ._task import DEFAULT_TIMEOUT, OUTPUTS, OpenAIChatTask

__all__ = [
    "DEFAULT_TIMEOUT",
    "ModelRequestError",
    "ModelServerError",
    "ModelUnreachableError",
    "OUTPUTS",
    "OpenAIChatTask",
    "REASONING_FIELDS",
]
