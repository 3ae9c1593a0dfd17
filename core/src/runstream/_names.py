"""Step names: one rule for task steps, composite nodes and branches."""

from __future__ import annotations

import re
from typing import Final

__all__: list[str] = []

#: A step name: safe in paths, event fields and YAML keys; no dots, which join the parts of a
#: nested step's path (``fanout.a.llm``).
STEP_NAME_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$"
_STEP_NAME = re.compile(STEP_NAME_PATTERN)

#: The rule in words, for error messages.
STEP_NAME_RULE: Final = ("1-100 letters, digits, '_' or '-', not starting with '-' (no dots: "
                         "dots separate the parts of a nested step's path)")


def is_step_name(name: object) -> bool:
    """Whether ``name`` is a valid step name (see :data:`STEP_NAME_PATTERN`)."""
    return isinstance(name, str) and _STEP_NAME.match(name) is not None
