"""Name -> class registries filled through the registration hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ._errors import PluginError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """The classes of one kind (task types, sinks, ...) that plugins registered, by name."""

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind = kind
        self.base = base
        self._classes: dict[str, type[T]] = {}
        self._owners: dict[str, str] = {}
        #: Says where an unknown name may come from (set by load_plugins: the plugins that the
        #: RUNSTREAM_*_PLUGINS variables kept out); appended to the unknown-name error.
        self.unknown_hint: Callable[[str], str] = lambda name: ""

    def register(self, name: str, cls: type[T], owner: str = "?") -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{owner}' registered a {self.kind} with an empty name")
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise PluginError(
                f"plugin '{owner}' registered {self.kind} '{name}' as {cls!r}, "
                f"which is not a subclass of {self.base.__name__}"
            )
        if name in self._classes:
            raise PluginError(
                f"{self.kind} '{name}' is registered twice: by '{self._owners[name]}' and by "
                f"'{owner}'; uninstall or block one of them (RUNSTREAM_BLOCK_PLUGINS)"
            )
        self._classes[name] = cls
        self._owners[name] = owner

    def get(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            installed = ", ".join(sorted(self._classes)) or "none"
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'; installed {self.kind}s: {installed}"
                f"{self.unknown_hint(name)}"
            ) from None

    def get_for_config(self, name: str, where: str) -> type[T]:
        """Like :meth:`get`, with the config entry named in the error."""
        try:
            return self.get(name)
        except UnknownNameError as exc:
            raise UnknownNameError(f"{where}: {exc}") from None

    def remove_owner(self, owner: str) -> None:
        """Forget every name that ``owner`` registered."""
        for name in [n for n, o in self._owners.items() if o == owner]:
            del self._classes[name]
            del self._owners[name]

    def owner(self, name: str) -> str:
        return self._owners[name]

    def names(self) -> list[str]:
        return sorted(self._classes)

    def name_of(self, cls: type[T]) -> str | None:
        for name, c in self._classes.items():
            if c is cls:
                return name
        return None

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._classes))
