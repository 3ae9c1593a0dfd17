"""Failure injection: parse ``fail_error`` ("RuntimeError: upstream model overloaded")."""

from __future__ import annotations

import builtins
import importlib
import re

__all__ = ["parse_fail_error"]

_SPEC = re.compile(r"(?P<type>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
                   r"(?:\s*:\s*(?P<message>.*))?", re.DOTALL)


def _resolve(name: str) -> object:
    if "." not in name:
        if not hasattr(builtins, name):
            raise ValueError(
                f"fail_error: unknown exception type '{name}'; use a built-in exception such "
                "as RuntimeError, TimeoutError or ConnectionError, or a dotted path such as "
                "'mypkg.errors.RateLimited'")
        return getattr(builtins, name)
    module_name, _, attr = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"fail_error: cannot import module '{module_name}' for exception "
                         f"type '{name}': {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"fail_error: module '{module_name}' has no attribute '{attr}'"
                         ) from None


def parse_fail_error(spec: str) -> tuple[type[Exception], str | None]:
    """``"Type: message"`` or ``"Type"`` -> (exception class, message or None).

    ``Type`` is a built-in exception name or a dotted ``module.Class`` path. Raises ``ValueError``
    with a message that says what is wrong.
    """
    match = _SPEC.fullmatch(spec.strip())
    if match is None:
        raise ValueError(
            f"fail_error must look like 'ErrorType: message' (e.g. 'RuntimeError: upstream "
            f"model overloaded'), got {spec!r}")
    cls = _resolve(match["type"])
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        raise ValueError(f"fail_error: '{match['type']}' is not an Exception subclass")
    message = match["message"]
    try:
        cls(message or "")
    except Exception as exc:
        raise ValueError(f"fail_error: {match['type']} cannot be built from one message "
                         f"argument ({type(exc).__name__}: {exc}); pick another type") from None
    return cls, message or None
