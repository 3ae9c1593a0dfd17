"""The public surface: everything in __all__ imports, and __all__ is sorted and complete."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import runstream


def test_all_is_sorted_and_every_name_resolves() -> None:
    names = [n for n in runstream.__all__ if n != "__version__"]
    assert runstream.__all__ == sorted(runstream.__all__)
    for name in names:
        assert getattr(runstream, name) is not None


def test_all_covers_every_public_name_of_private_modules() -> None:
    exported = set(runstream.__all__)
    missing = []
    for mod in pkgutil.iter_modules(runstream.__path__):
        if not mod.name.startswith("_") or mod.name in {"_cli", "_builtins"}:
            continue
        module = importlib.import_module(f"runstream.{mod.name}")
        for name in getattr(module, "__all__", []):
            if name not in exported:
                missing.append(f"{mod.name}.{name}")
    assert missing == []


def test_public_classes_have_docstrings() -> None:
    for name in runstream.__all__:
        obj = getattr(runstream, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"runstream.{name} has no docstring"


def test_import_runstream_is_lazy() -> None:
    code = "import sys, runstream; print('pydantic' in sys.modules, 'stevedore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def test_unknown_attribute() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        runstream.Nope  # noqa: B018


def test_the_public_names_are_listed_once() -> None:
    """``__all__`` and the lazy loading come from the TYPE_CHECKING imports of __init__.py (the
    one list mypy reads too): no second list to keep in step."""
    source = inspect.getsource(runstream)
    assert "__all__ =" not in source and "_WHERE" not in source
    for name in runstream.__all__:
        if name != "__version__":
            assert f"{name} as {name}" in source
