"""Name -> class registries filled through the registration hooks.

A plugin registers a class, or a reference to one (``"package.module:Class"``) that is imported
on the first :meth:`Registry.get`: every runtime loads every installed plugin, and a plugin whose
class module imports an SDK (redis-py, taskiq, psycopg) would otherwise cost every process that
SDK's import time and memory, whether its config uses the plugin or not.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from ._errors import PluginError, UnknownNameError

T = TypeVar("T")

#: ``dotted.module:Qualified.name``, identifiers only.
_REFERENCE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class Registry(Generic[T]):
    """The classes of one kind (task types, sinks, ...) that plugins registered, by name."""

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind = kind
        self.base = base
        self._classes: dict[str, type[T]] = {}
        #: Registered by reference and not imported yet: name -> "module:Class".
        self._refs: dict[str, str] = {}
        #: Every registered name (both kinds) -> the plugin that registered it.
        self._owners: dict[str, str] = {}
        #: Says where an unknown name may come from (set by load_plugins: the plugins that the
        #: RUNSTREAM_*_PLUGINS variables kept out); appended to the unknown-name error.
        self.unknown_hint: Callable[[str], str] = lambda name: ""

    def register(self, name: str, cls: type[T] | str, owner: str = "?") -> None:
        """Add ``cls`` under ``name``; ``cls`` may be a ``"module:Class"`` reference, imported
        (and checked) on the first :meth:`get`."""
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{owner}' registered a {self.kind} with an empty name")
        if isinstance(cls, str):
            if not _REFERENCE.fullmatch(cls):
                raise PluginError(
                    f"plugin '{owner}' registered {self.kind} '{name}' as {cls!r}, which is not "
                    "a 'package.module:Class' reference"
                )
        elif not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise PluginError(
                f"plugin '{owner}' registered {self.kind} '{name}' as {cls!r}, "
                f"which is not a subclass of {self.base.__name__}"
            )
        if name in self._owners:
            raise PluginError(
                f"{self.kind} '{name}' is registered twice: by '{self._owners[name]}' and by "
                f"'{owner}'; uninstall or block one of them (RUNSTREAM_BLOCK_PLUGINS)"
            )
        if isinstance(cls, str):
            self._refs[name] = cls
        else:
            self._classes[name] = cls
        self._owners[name] = owner

    def get(self, name: str) -> type[T]:
        """The class registered under ``name``, imported now if it was registered by reference.

        Raises :class:`UnknownNameError` for a name nobody registered and :class:`PluginError`
        for a reference that does not import or is not a subclass of the registry's base."""
        cls = self._classes.get(name)
        if cls is not None:
            return cls
        ref = self._refs.get(name)
        if ref is None:
            installed = ", ".join(self.names()) or "none"
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'; installed {self.kind}s: {installed}"
                f"{self.unknown_hint(name)}"
            )
        return self._resolve(name, ref, _import(ref, self._fail(name, ref)))

    def get_for_config(self, name: str, where: str) -> type[T]:
        """Like :meth:`get`, with the config entry named in the error."""
        try:
            return self.get(name)
        except UnknownNameError as exc:
            raise UnknownNameError(f"{where}: {exc}") from None
        except PluginError as exc:
            raise PluginError(f"{where}: {exc}") from None

    def _fail(self, name: str, ref: str) -> Callable[[str], PluginError]:
        def fail(why: str) -> PluginError:
            return PluginError(f"plugin '{self._owners[name]}' registered {self.kind} '{name}' "
                               f"as '{ref}', {why}")
        return fail

    def _resolve(self, name: str, ref: str, obj: object) -> type[T]:
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise self._fail(name, ref)(f"which is {obj!r}, not a subclass of "
                                        f"{self.base.__name__}")
        self._classes[name] = obj
        self._refs.pop(name, None)  # another thread may have resolved it too: same class
        return obj

    def remove_owner(self, owner: str) -> None:
        """Forget every name that ``owner`` registered."""
        for name in [n for n, o in self._owners.items() if o == owner]:
            self._classes.pop(name, None)
            self._refs.pop(name, None)
            del self._owners[name]

    def owner(self, name: str) -> str:
        return self._owners[name]

    def reference(self, name: str) -> str | None:
        """The ``"module:Class"`` reference ``name`` was registered by, while not imported."""
        return self._refs.get(name)

    def names(self) -> list[str]:
        return sorted(self._owners)

    def name_of(self, cls: type[T]) -> str | None:
        """The name ``cls`` is registered under. A reference whose module nobody imported yet
        cannot name ``cls``, so only references into already imported modules are looked at:
        answering never imports anything."""
        for name, c in self._classes.items():
            if c is cls:
                return name
        for name, ref in list(self._refs.items()):
            module, _, path = ref.partition(":")
            obj: Any = sys.modules.get(module)
            for part in path.split(".") if obj is not None else ():
                obj = getattr(obj, part, None)
            if obj is cls and isinstance(cls, type) and issubclass(cls, self.base):
                self._resolve(name, ref, cls)
                return name
        return None

    def __contains__(self, name: object) -> bool:
        return name in self._owners

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _import(ref: str, fail: Callable[[str], PluginError]) -> object:
    module_name, _, path = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raised while importing
        raise fail(f"which cannot be imported: {type(exc).__name__}: {exc}") from None
    for part in path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise fail(f"but module '{module_name}' has no attribute '{path}'") from None
    return obj
