"""Resolving ``module:function`` strings."""

from __future__ import annotations

import importlib
import os
import sys
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
