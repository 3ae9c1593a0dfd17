"""Turn pydantic validation errors into messages that name the bad key and what is allowed."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError


def printable(text: object) -> str:
    """``str(text)`` with newlines and other control characters escaped, so that a key or
    value quoted in an error message cannot break its line (or drive a terminal)."""
    s = str(text)
    return s if s.isprintable() else repr(s)[1:-1]


def _loc(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{printable(part)}" if out else printable(part)
    return out or "(top level)"


def explain(error: ValidationError, *, prefix: str = "", model: type[BaseModel] | None = None,
            ) -> str:
    """One message per problem, joined with '; '."""
    parts = []
    for e in error.errors(include_url=False):
        loc = tuple(e["loc"])
        where = _loc(prefix, loc)
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            parts.append(f"unknown key '{where}'{hint}")
        elif e["type"] == "missing":
            parts.append(f"missing required key '{where}'")
        else:
            # A validator's own message says it all; pydantic's "Value error, " adds nothing.
            msg = e["msg"].removeprefix("Value error, ")
            parts.append(f"'{where}': {msg} (got {short_repr(e.get('input'))})")
    return "; ".join(parts)


#: The password of a URL or DSN (``scheme://user:password@host``).
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^\s/'\"]+@")


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to 60 characters, for error messages, with the password of any URL in
    it shown as ``***``; never raises."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"a number of about {int(value.bit_length() * 0.30103)} digits"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__}"
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> list[str]:
    if model is None:
        return []
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def check_store_path(value: str, *, directory: bool) -> str:
    """A store's ``path`` option, checked before anything opens it: no NUL character, and the
    path (or its nearest existing ancestor) is the kind of thing the store will create there.

    ``directory``: the store keeps a directory of files there (else one file)."""
    from pathlib import Path

    if not value:
        raise ValueError("the path is empty")
    if "\0" in value:
        raise ValueError("the path contains a NUL character (\\0), which no file name can hold")
    path = Path(value)
    if path.is_dir() and not directory:
        raise ValueError(f"{value} is a directory; give the database file, e.g. "
                         f"{path / 'runstream.db'}")
    if path.exists() and not path.is_dir() and directory:
        raise ValueError(f"{value} is a file, not a directory; give a directory for the run "
                         "files (it is created if missing)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{parent} is a file, so {value} cannot be created under it")
            break
    return value
