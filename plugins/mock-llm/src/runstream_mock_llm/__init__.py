"""runstream-mock-llm: the ``mock-llm`` task type, a fake LLM that streams an answer word by word.

Use :class:`MockLLMTask` in Python pipelines, or ``type: mock-llm`` in YAML pipelines.
"""

from ._task import OUTPUTS, MockLLMTask
from ._text import DEFAULT_TEMPLATE, VOCABULARY

__all__ = ["DEFAULT_TEMPLATE", "MockLLMTask", "OUTPUTS", "VOCABULARY"]
