"""JSON text of runstream's models that never fails on what a caller or a task can put in them.

Parameters and event data are user data: a lone surrogate (valid in a Python ``str`` and in JSON
``"\\ud800"``, but not in UTF-8), NaN, or an object JSON cannot hold. pydantic's serializer
raises on the first, and a record that cannot be written must never cost a run its end. So:
values JSON cannot hold are written as their ``repr``, NaN and infinities as ``null``, and lone
surrogates as U+FFFD (no UTF-8 store, file or socket can carry them; a surrogate *pair* is
joined into the character it encodes). The common case pays for one pydantic call.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

__all__: list[str] = []  # internal: the public way is RunLog.to_json() and Event.to_json()


def scrub_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD and surrogate pairs joined."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def model_json(model: BaseModel, *, indent: int | None = None) -> str:
    """JSON text of ``model`` (see the module docstring); never raises for its values."""
    try:
        return model.model_dump_json(fallback=repr, indent=indent)
    except (PydanticSerializationError, ValueError, RecursionError):
        pass
    try:
        data: Any = to_jsonable_python(model, fallback=repr)
    except (PydanticSerializationError, ValueError, RecursionError):  # e.g. a cycle
        data = repr(model)
    try:
        text = json.dumps(data, ensure_ascii=False, indent=indent, default=repr,
                          allow_nan=False)
    except (ValueError, RecursionError):  # a cycle, or NaN pydantic left in place
        text = json.dumps(repr(data))
    return scrub_surrogates(text)
