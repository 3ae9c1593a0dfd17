"""Pipelines by reference: ``module:function`` (or ``module:attribute``) and YAML files.

A remote executor's workers get a pipeline by reference, never pickled: a reference names
something any process can import (a module-level function, or a module-level pipeline) or
a YAML pipeline file, and :func:`load_pipeline_ref` sets it as the pipeline's ``ref``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import PipelineDefinitionError
from ._imports import import_object
from ._pipeline import AsyncPipeline, Pipeline
from ._yaml_pipeline import load_pipeline

if TYPE_CHECKING:
    from ._config import Config
    from ._runtime import Runtime

__all__ = ["load_pipeline_ref"]


def _is_yaml(ref: str) -> bool:
    path = Path(ref)
    return path.suffix in {".yaml", ".yml"} or (":" not in ref and path.exists())


def load_pipeline_ref(ref: str,
                      config: Runtime | Config | str | os.PathLike[str] | None = None
                      ) -> AsyncPipeline:
    """The pipeline ``ref`` names: a YAML pipeline file's path, or ``package.module:name``
    where ``name`` is a pipeline or a function that returns one when called without
    arguments. The pipeline's ``ref`` is set, so a remote executor can run it on its workers.

    Raises :class:`PipelineDefinitionError` saying what could not be imported or called.
    """
    if not isinstance(ref, str) or not ref:
        raise PipelineDefinitionError(f"{ref!r} is not a pipeline reference: use "
                                      "'package.module:function' or a YAML file path")
    if _is_yaml(ref):
        return load_pipeline(ref, config)
    obj = import_object(ref)
    if callable(obj) and not isinstance(obj, (AsyncPipeline, Pipeline)):
        try:
            obj = obj()
        except TypeError as exc:
            raise PipelineDefinitionError(f"calling {ref}() failed: {exc}") from None
    if isinstance(obj, Pipeline):
        obj = obj.as_async()
    if not isinstance(obj, AsyncPipeline):
        raise PipelineDefinitionError(
            f"{ref} is a {type(obj).__name__}, not a pipeline (or a function returning one)")
    obj.ref = ref
    return obj
