"""Secret parameters: values that tasks receive but that runstream never records or emits."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence, Set as AbstractSet
from typing import Any, ClassVar, Final, Generic, TypeVar

from pydantic_core import SchemaSerializer, core_schema

__all__ = ["Secret"]

T = TypeVar("T")

#: What a secret value looks like wherever runstream shows or stores it.
MASK: Final = "**********"

#: Texts shorter than this are not redacted from messages: a 1-3 character "secret" would turn
#: every message into stars, and it is no secret.
MIN_REDACTED_CHARS: Final = 4

_NO_NAMES: frozenset[str] = frozenset()


class Secret(Generic[T]):
    """A parameter value that runstream hands to tasks but never records or emits.

    >>> await pipeline.execute({"prompt": "Hi", "api_key": Secret(os.environ["API_KEY"])})

    Tasks receive the value itself (``api_key`` is the string). The run log (``parameters``,
    each attempt's ``input_parameters`` and ``output_parameters``), runstream's own events and
    the error messages it records show ``**********`` instead; so do ``repr()``, ``str()``,
    f-strings and pydantic's JSON of the wrapper. A task may also return a ``Secret`` as one of
    its ``returns``: later steps receive the value, the run log shows the mask.

    Names listed in the config's ``parameters.secret`` are secret without the wrapper (for the
    CLI, parameters files and environment variables). See docs/security.md.
    """

    __slots__ = ("_value",)

    #: pydantic serializes a Secret anywhere (an event's data, a model field) as the mask.
    __pydantic_serializer__: ClassVar[SchemaSerializer] = SchemaSerializer(
        core_schema.any_schema(serialization=core_schema.plain_serializer_function_ser_schema(
            lambda _value: MASK)))

    def __init__(self, value: T) -> None:
        self._value = value.get_secret_value() if isinstance(value, Secret) else value

    def get_secret_value(self) -> T:
        """The value itself."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and bool(self._value == other._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        # Copying and pickling keep working (multiprocessing executors), with the value.
        return (Secret, (self._value,))


def _texts(value: Any, out: list[str], depth: int = 0) -> None:
    """The texts under which ``value`` (or a part of it) could appear in a message."""
    if depth > 20:
        return
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, (int, float)):
        out.append(str(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            _texts(item, out, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _texts(item, out, depth + 1)
    else:
        out.append(str(value))
    if isinstance(value, (Mapping, list, tuple)):
        with contextlib.suppress(TypeError, ValueError):  # e.g. a circular structure
            out.append(json.dumps(value, default=str))


class RunSecrets:
    """The secret parameters of one run: their names (masked in the run log) and their texts
    (redacted from the messages runstream records and emits)."""

    __slots__ = ("names", "texts")

    def __init__(self) -> None:
        # Empty and immutable until a secret comes (most runs have none): a frozenset and a
        # tuple shared by every run, not a set and a list per run for the garbage collector.
        self.names: AbstractSet[str] = _NO_NAMES
        self.texts: Sequence[str] = ()

    def __bool__(self) -> bool:
        return bool(self.names)

    def add(self, name: str, value: Any) -> None:
        self.names = self.names | {name}
        found: list[str] = []
        _texts(value, found)
        texts = set(self.texts)
        texts.update(t for t in found if len(t) >= MIN_REDACTED_CHARS)
        # Longest first: a secret that contains another is replaced whole.
        self.texts = sorted(texts, key=len, reverse=True)

    def unwrap(self, params: Mapping[str, Any], names: Iterable[str] = ()) -> dict[str, Any]:
        """``params`` with every :class:`Secret` replaced by its value; the wrapped ones and
        those listed in ``names`` become secret."""
        listed = set(names)
        plain = dict(params)
        for key, value in params.items():
            if isinstance(value, Secret):
                plain[key] = value = value.get_secret_value()
                self.add(key, value)
            elif key in listed:
                self.add(key, value)
        if listed:
            self.names = self.names | listed
        return plain

    def absorb(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """A step's outputs with every :class:`Secret` unwrapped; their names become secret."""
        for value in outputs.values():
            if isinstance(value, Secret):
                return self.unwrap(outputs)
        return outputs

    def mask(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` as it may be recorded: the values of secret names, and values equal to a
        secret's text (a Map's item taken from a secret list), are ``**********``."""
        names = self.names
        if not names:
            return params
        texts = set(self.texts)
        return {k: MASK if k in names or (isinstance(v, str) and v in texts) else v
                for k, v in params.items()}

    def redact(self, text: str) -> str:
        """``text`` with every secret value in it replaced by ``**********``."""
        for secret in self.texts:
            if secret in text:
                text = text.replace(secret, MASK)
        return text
