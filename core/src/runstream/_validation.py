"""Turn pydantic validation errors into messages that name the bad key and what is allowed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError


def _loc(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
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
            parts.append(f"'{where}': {e['msg']} (got {_short(e.get('input'))})")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
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
