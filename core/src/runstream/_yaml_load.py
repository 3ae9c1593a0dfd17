"""Loading YAML that a user wrote (config, pipeline and parameters files) into plain data.

Every way a document can be wrong ends as one line naming the file and the problem, raised as
the caller's error class: syntax errors (``file:line:col: ...``), numbers too long for Python's
int conversion, nesting too deep for the parser, recursive aliases (``&a [*a]``) and alias
"bombs" that expand to millions of values. What comes back is a tree (no cycles) at most
:data:`MAX_DEPTH` containers deep, so code that walks it recursively cannot overflow the stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import RunstreamError
from ._validation import printable

if TYPE_CHECKING:
    import yaml

#: Deepest nesting of lists and mappings a document may have.
MAX_DEPTH = 64
#: Most values a document may hold once its aliases are expanded.
MAX_VALUES = 1_000_000


def load_yaml(text: str, source: str, error: type[RunstreamError]) -> Any:
    """``yaml.safe_load(text)``, checked; problems raise ``error`` with a one-line message."""
    import yaml  # on first use: PyYAML is a fifth of what importing runstream would cost

    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise error(_marked(exc, source)) from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {_one_line(str(exc))}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply to read (at most {MAX_DEPTH} levels of lists "
                    "and mappings); flatten it") from None
    except ValueError as exc:  # e.g. int('9' * 5000): Python's int-from-text digit limit
        if "digits" in str(exc):
            raise error(f"{source}: a number has too many digits (at most 4300); quote it if "
                        "it is text") from None
        raise error(f"{source}: not valid YAML: {_one_line(str(exc))}") from None
    check_tree(data, source, error)
    return data


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _marked(exc: yaml.MarkedYAMLError, source: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    problem = _one_line(exc.problem or exc.context or "syntax error")
    context = ""
    if exc.context and exc.problem:
        context = f" ({_one_line(exc.context)}"
        if exc.context_mark is not None and exc.context_mark is not mark:
            context += (f" started at line {exc.context_mark.line + 1}, column "
                        f"{exc.context_mark.column + 1}")
        context += ")"
    return f"{where}: not valid YAML: {problem}{context}"


def check_tree(data: Any, source: str, error: type[RunstreamError]) -> None:
    """Reject cycles, nesting deeper than MAX_DEPTH and alias expansion past MAX_VALUES.

    Aliases make the document a graph whose shared parts are visited once each (``seen``), so
    the check is linear in the document's size, not in its expansion."""
    seen: dict[int, tuple[int, int]] = {}  # id -> (values, height) of a finished container
    on_path: set[int] = set()

    def too_deep(path: str) -> RunstreamError:
        shown = path if len(path) <= 80 else path[:77] + "..."
        return error(f"{source}: nested more than {MAX_DEPTH} levels deep (at {shown}); "
                     "flatten it")

    def size(value: Any, path: str, depth: int) -> tuple[int, int]:
        if not isinstance(value, (list, dict)):
            return 1, 0
        key = id(value)
        if key in on_path:
            raise error(f"{source}: {path or 'the document'} refers back to a value that "
                        "contains it (a recursive alias, like `&a [*a]`); an alias may only "
                        "repeat a value defined before it")
        known = seen.get(key)
        if known is not None:
            if depth + known[1] > MAX_DEPTH:
                raise too_deep(path)
            return known
        if depth >= MAX_DEPTH:
            raise too_deep(path)
        on_path.add(key)
        total, height = 1, 1
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            part = (f"[{k}]" if isinstance(value, list)
                    else f".{printable(k)}" if path else printable(k))
            values, below = size(v, path + part, depth + 1)
            total += values
            height = max(height, below + 1)
            if total > MAX_VALUES:
                raise error(f"{source}: expands to more than {MAX_VALUES:,} values through "
                            "its aliases; write it out without nested aliases")
        on_path.discard(key)
        seen[key] = (total, height)
        return total, height

    size(data, "", 0)
