"""The hot-path shortcuts of runstream's core, in one place.

Each skips a general mechanism of a library on a path taken per event or per step, where the
general way was measured to cost a large share of the time. Each relies on a behaviour of that
library that is not part of its documented API; ``tests/test_hotpath.py`` pins each behaviour, so
an upgrade that changes one fails a test instead of corrupting data.

- :func:`new_model`: a pydantic model instance from already-valid values, without validation and
  without ``model_construct``'s per-field loop (a third of its cost). Relies on pydantic v2
  keeping an instance's state in ``__dict__``, ``__pydantic_fields_set__``,
  ``__pydantic_extra__`` and ``__pydantic_private__``.
- :func:`set_fields`: several fields of a pydantic model that does not validate on assignment,
  in one ``__dict__`` update (three ``__setattr__`` calls cost ~1 us more per step). Relies on
  such a model's ``__setattr__`` doing nothing but store the value (and mark it set).
- :func:`fast_private_attributes`: reads of a pydantic model's private attributes (``_x =
  PrivateAttr()``) as one descriptor call on the class: pydantic serves them from its
  ``__getattr__``, which raises and catches two AttributeErrors first (3-4 us a read; a file
  sink read four per event). Relies on pydantic v2 keeping them in ``__pydantic_private__`` and
  setting them there (its ``__setattr__`` goes by ``__private_attributes__``, not the class
  attribute).
- :func:`prefixed_environ`: the environment variables with a prefix, from ``os.environ``'s raw
  bytes mapping (``os.environ._data``), decoding only those (decoding every variable costs ~1 us
  each, per run). Falls back to ``os.environ`` where that mapping is not there.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

from pydantic import BaseModel

__all__: list[str] = []

M = TypeVar("M", bound=BaseModel)

_new = object.__new__
_setattr = object.__setattr__


def new_model(cls: type[M], values: dict[str, Any], fields_set: set[str]) -> M:
    """An instance of ``cls`` holding ``values`` as they are (no validation, no defaults)."""
    model = _new(cls)
    _setattr(model, "__dict__", values)
    _setattr(model, "__pydantic_fields_set__", fields_set)
    _setattr(model, "__pydantic_extra__", None)
    _setattr(model, "__pydantic_private__", None)
    return model


def set_fields(model: BaseModel, **values: Any) -> None:
    """Set fields of ``model`` (whose config does not validate assignments) at once."""
    model.__dict__.update(values)
    model.__pydantic_fields_set__.update(values)


class _PrivateRead:
    """A class attribute that reads one private attribute from ``__pydantic_private__``."""

    __slots__ = ("by_pydantic", "name")

    def __init__(self, name: str, by_pydantic: bool) -> None:
        self.name = name
        #: Left to pydantic: a default that is itself a descriptor (pydantic calls its
        #: ``__get__``: a function default reads as a bound method).
        self.by_pydantic = by_pydantic

    def __get__(self, model: BaseModel | None, cls: type[BaseModel] | None = None) -> Any:
        if model is None:  # on the class: what pydantic gives there, the ModelPrivateAttr
            assert cls is not None
            return cls.__private_attributes__[self.name]
        if not self.by_pydantic:
            private = model.__pydantic_private__
            if private is not None and self.name in private:
                return private[self.name]
        # Not set (no default, or a model made without them), or left to pydantic: its
        # __getattr__ answers, with its own error.
        raise AttributeError(self.name)


def fast_private_attributes(cls: type[BaseModel]) -> None:
    """Make reads of ``cls``'s private attributes plain descriptor calls (call it from
    ``__pydantic_init_subclass__``: every class that adds private attributes)."""
    for name, attribute in cls.__private_attributes__.items():
        by_pydantic = hasattr(attribute.default, "__get__")
        type.__setattr__(cls, name, _PrivateRead(name, by_pydantic))


def prefixed_environ(prefix: str) -> list[tuple[str, str]]:
    """``(name, value)`` of the environment variables whose names start with ``prefix`` and
    are longer than it, read from the process environment now."""
    raw = getattr(os.environ, "_data", None)
    if isinstance(raw, dict):
        key = prefix.encode()
        return [(os.fsdecode(k), os.fsdecode(v)) for k, v in raw.items()
                if isinstance(k, bytes) and k.startswith(key) and len(k) > len(key)]
    return [(k, v) for k, v in os.environ.items()  # pragma: no cover - other platforms
            if k.startswith(prefix) and len(k) > len(prefix)]
