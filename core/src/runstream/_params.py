"""Parameter resolution: explicit dict > ``RUNSTREAM_PRM_<name>`` > parameters file.

The environment is read only when the caller asks (``environment=``, or names listed in the
config's ``parameters.environment``): a server's environment holds its own secrets, which must not
land in the recorded parameters of every run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ._errors import ParameterError
from ._hotpath import prefixed_environ
from ._yaml_load import MAX_DEPTH, load_yaml

__all__ = ["resolve_parameters"]

ENV_PREFIX = "RUNSTREAM_PRM_"

#: Which ``RUNSTREAM_PRM_<name>`` variables a run reads: ``True`` (all of them), ``False``
#: (none) or a collection of names.
EnvironmentArg = bool | Collection[str]


def parse_value(text: str) -> Any:
    """JSON-decode ``text``; text that is not JSON is kept as the string itself.

    So ``42`` is an int, ``"42"`` and ``hello`` are strings, ``[1, 2]`` is a list.
    """
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:  # e.g. "[" * 100_000: deeper than the JSON decoder can go
        raise ParameterError(
            f"the value is nested too deeply (at most {MAX_DEPTH} levels of lists and "
            "mappings)") from None


def _from_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError(f"cannot read parameters file {path}: {exc.strerror or exc}"
                             ) from None
    except UnicodeDecodeError:
        raise ParameterError(f"parameters file {path} is not UTF-8 text") from None
    data = load_yaml(text, f"parameters file {path}", ParameterError)
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ParameterError(
            f"parameters file {path} must be a mapping of names to values, "
            f"got a {type(data).__name__}"
        )
    return data


def _prefixed(environ: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """The ``RUNSTREAM_PRM_*`` entries of ``environ`` (default: the process environment now)."""
    if environ is None:
        return prefixed_environ(ENV_PREFIX)
    return [(k, v) for k, v in environ.items()
            if k.startswith(ENV_PREFIX) and len(k) > len(ENV_PREFIX)]


def _named(names: Collection[str], environ: Mapping[str, str] | None) -> list[tuple[str, str]]:
    source: Mapping[str, str] = os.environ if environ is None else environ
    found = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise ParameterError(f"environment parameter names must be non-empty strings, "
                                 f"got {name!r}")
        value = source.get(ENV_PREFIX + name)
        if value is not None:
            found.append((ENV_PREFIX + name, value))
    return found


def merge_environment(*choices: EnvironmentArg) -> EnvironmentArg:
    """One choice of environment variables from several (the config's and the caller's)."""
    names: set[str] = set()
    for choice in choices:
        if choice is True:
            return True
        if choice is False or choice is None:
            continue
        if isinstance(choice, str):
            raise ParameterError(f"environment must be True, False or a list of names, "
                                 f"got the string {choice!r} (write [{choice!r}])")
        names.update(choice)
    return names


def resolve_parameters(
    explicit: Mapping[str, Any] | None = None,
    parameters_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    environment: EnvironmentArg = False,
) -> dict[str, Any]:
    """Merge the three parameter sources.

    ``environment`` says which ``RUNSTREAM_PRM_<name>`` variables are read (now, at call time):
    ``False`` (default) none, ``True`` all, or a collection of names. ``environ`` replaces
    ``os.environ`` (for tests).
    """
    params: dict[str, Any] = {}
    if parameters_file is not None:
        params.update(_from_file(parameters_file))
    environment = merge_environment(environment)
    if environment is True:
        found = _prefixed(environ)
    else:
        found = _named(sorted(environment), environ) if environment else []
    for key, value in found:
        try:
            params[key[len(ENV_PREFIX):]] = parse_value(value)
        except ParameterError as exc:
            raise ParameterError(f"${key}: {exc}") from None
    if explicit is not None:
        if not isinstance(explicit, Mapping):
            raise ParameterError(
                f"parameters must be a mapping of names to values, got {type(explicit).__name__}"
            )
        for key in explicit:
            if not isinstance(key, str):
                raise ParameterError(f"parameter names must be strings, got {key!r}")
        params.update(explicit)
    return params
