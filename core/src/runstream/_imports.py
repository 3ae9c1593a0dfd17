"""Resolving ``module:function`` strings."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import PipelineDefinitionError


def _where_hint(module_name: str, exc: ImportError) -> str:
    """Why a top-level package is not found, when the working directory is the likely cause."""
    top = module_name.partition(".")[0]
    if not isinstance(exc, ModuleNotFoundError) or exc.name != top:
        return ""  # the module exists; something it imports is missing
    cwd = os.getcwd()
    if cwd in sys.path or "" in sys.path:
        return (f" ('{top}' is looked up relative to the current working directory, {cwd}, "
                "and PYTHONPATH: run from the project root or add it to PYTHONPATH)")
    return f" ('{top}' is not on sys.path: install it or add its directory to PYTHONPATH)"


def import_object(path: str) -> Any:
    """Import ``package.module:attr.sub``; errors say which part failed and why."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise PipelineDefinitionError(
            f"{path!r} is not a 'module:function' path (e.g. 'mypkg.llm:stream_answer')")
    module_name, _, attr_path = path.partition(":")
    if not module_name or not attr_path:
        raise PipelineDefinitionError(
            f"{path!r} is not a 'module:function' path (e.g. 'mypkg.llm:stream_answer')")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PipelineDefinitionError(f"cannot import module '{module_name}' for '{path}': {exc}"
                                      f"{_where_hint(module_name, exc)}") from None
    except Exception as exc:
        raise PipelineDefinitionError(
            f"importing module '{module_name}' for '{path}' raised "
            f"{type(exc).__name__}: {exc}") from None
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PipelineDefinitionError(
                f"module '{module_name}' has no attribute '{attr_path}' (from '{path}')"
            ) from None
    return obj


def lazy_exports(package: str, where: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package whose public names are imported
    on first use: ``where`` maps each name to the submodule of ``package`` that defines it.

    For a plugin whose class module imports a heavy SDK: runstream imports the package of every
    installed plugin's entry point, so its ``__init__`` must not import that module itself
    (see "Registering by reference" in docs/plugins.md)::

        __getattr__, __dir__ = runstream.lazy_exports(__name__, {"MyDBStore": "_store"})
    """

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # found directly from now on
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__

