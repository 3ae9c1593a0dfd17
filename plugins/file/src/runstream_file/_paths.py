"""Event file paths: the ``path`` template, its base directory, and the confinement check.

The rule: the rendered path (relative paths are relative to the working directory) must lie
inside the base directory. ``base_dir`` defaults to the template's fixed leading directory: its
path components before the first one that holds a placeholder or is ``..`` (for the default
``.runstream/events/{run_id}.jsonl`` that is ``.runstream/events``; for ``{run_id}.jsonl`` the
working directory). A value put into a placeholder must be one plain file name: no ``/`` or
``\\``, not ``.`` or ``..``, no NUL, not empty, so no run id, pipeline name or parameter can move
the file elsewhere; the rendered path is also checked after symlinks are resolved.
"""

from __future__ import annotations

import glob
import os
import string
from collections.abc import Iterator, Mapping
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstream import RunstreamError

if TYPE_CHECKING:
    from runstream import RunLog

__all__ = ["DEFAULT_PATH", "PLACEHOLDERS", "EventPathError", "PathTemplate"]

DEFAULT_PATH = ".runstream/events/{run_id}.jsonl"
#: Placeholders a template may use, besides ``{params.NAME}``.
PLACEHOLDERS = ("date", "pipeline", "run_id")
_PARAM = "params."
_ALLOWED = "{run_id}, {pipeline}, {date} and {params.NAME}"


class EventPathError(RunstreamError):
    """An event file path would leave its base directory, or a placeholder value is unsafe."""


def _inside(path: str, base: str) -> bool:
    return path == base or os.path.commonpath([path, base]) == base


def _check_value(field: str, value: str) -> str:
    if (not value or value in {".", ".."} or "/" in value or "\\" in value
            or "\0" in value):
        raise EventPathError(
            f"refusing event file path: {{{field}}} is {value!r}, which is not a plain file "
            "name (no '/', '\\', '.' or '..'); the file must stay inside its base directory")
    return value


class PathTemplate:
    """A parsed ``path`` template with its base directory.

    Raises ``ValueError`` (which the config turns into a ``ConfigError``) for an unknown
    placeholder, a format spec, or a template that climbs out of its base directory.
    """

    def __init__(self, template: str, base_dir: str | None = None) -> None:
        if not template or "\0" in template:
            raise ValueError("the path template must be a non-empty file path")
        if template.endswith(("/", os.sep)):
            raise ValueError(f"path template {template!r} must name a file, not a directory")
        self.template = template
        self.parts: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ValueError(f"path template {template!r}: {exc} (write '{{{{' for a "
                             "literal '{')") from None
        for literal, field, spec, conversion in parsed:
            if field is not None:
                if spec or conversion:
                    raise ValueError(f"path template {template!r}: placeholders take no format "
                                     f"spec or conversion (got '{{{field}!{conversion}:{spec}}}')"
                                     if conversion else
                                     f"path template {template!r}: placeholders take no format "
                                     f"spec (got '{{{field}:{spec}}}')")
                if field not in PLACEHOLDERS and not (
                        field.startswith(_PARAM) and field[len(_PARAM):].isidentifier()):
                    raise ValueError(f"path template {template!r}: unknown placeholder "
                                     f"'{{{field}}}'; allowed: {_ALLOWED}")
            self.parts.append((literal, field))
        self.fields = frozenset(f for _, f in self.parts if f is not None)
        self.base_dir = base_dir if base_dir is not None else self._fixed_base(template)
        sample = self._render(dict.fromkeys(self.fields, "x"))
        if not _inside(os.path.abspath(sample), os.path.abspath(self.base_dir)):
            what = (f"base_dir {self.base_dir!r}" if base_dir is not None else
                    f"its base directory {self.base_dir!r}")
            raise ValueError(f"path template {template!r} leads outside {what}; the event "
                             "files must stay inside it (set base_dir to the directory they "
                             "belong in, and drop any '..')")

    @staticmethod
    def _fixed_base(template: str) -> str:
        head = template
        for i, ch in enumerate(template):
            if ch in "{}":
                head = template[:i]
                break
        # The last component (the file name, or a partly fixed one) is not part of the base.
        fixed = head.split("/")[:-1]
        base: list[str] = []
        for part in fixed:
            if part == "..":
                break
            base.append(part)
        if not base:
            return "."
        return "/".join(base) or "/"

    def _render(self, values: Mapping[str, str]) -> str:
        out = []
        for literal, field in self.parts:
            out.append(literal)
            if field is not None:
                out.append(values[field])
        return "".join(out)

    def values_for(self, run: RunLog) -> dict[str, str]:
        """The placeholder values of ``run``, each checked to be a plain file name."""
        values: dict[str, str] = {}
        for field in self.fields:
            raw: Any
            if field == "run_id":
                raw = run.run_id
            elif field == "pipeline":
                raw = run.pipeline
            elif field == "date":
                raw = run.started.astimezone(UTC).strftime("%Y-%m-%d")
            else:
                name = field[len(_PARAM):]
                if name not in run.parameters:
                    raise EventPathError(f"path template {self.template!r} needs parameter "
                                         f"'{name}', which this run does not have")
                raw = run.parameters[name]
                if isinstance(raw, bool) or not isinstance(raw, str | int | float):
                    raise EventPathError(
                        f"path template {self.template!r}: parameter '{name}' is a "
                        f"{type(raw).__name__}; only strings and numbers can name a file")
            values[field] = _check_value(field, str(raw))
        return values

    def path_for(self, run: RunLog) -> Path:
        """The absolute event file path of ``run``; raises :class:`EventPathError` if unsafe."""
        return self.confine(self._render(self.values_for(run)))

    def confine(self, rendered: str) -> Path:
        """``rendered`` as an absolute path, checked (lexically and after resolving symlinks
        of the directories that exist) to lie inside the base directory."""
        base = os.path.abspath(self.base_dir)
        target = os.path.abspath(rendered)
        if not _inside(target, base) or target == base:
            raise EventPathError(f"refusing event file path {rendered!r}: it is outside the "
                                 f"base directory {self.base_dir!r}")
        if not _inside(os.path.realpath(os.path.dirname(target)), os.path.realpath(base)):
            raise EventPathError(f"refusing event file path {rendered!r}: a symlink leads it "
                                 f"outside the base directory {self.base_dir!r}")
        return Path(target)

    def files_of(self, run_id: str) -> Iterator[Path]:
        """Existing files that may hold ``run_id``'s events (placeholders other than
        ``{run_id}`` match anything), sorted."""
        _check_value("run_id", run_id)
        pattern = "".join(
            glob.escape(literal) + ("" if field is None else
                                    run_id if field == "run_id" else "*")
            for literal, field in self.parts)
        for found in sorted(glob.glob(pattern)):
            try:
                path = self.confine(found)
            except EventPathError:
                continue
            if path.is_file():
                yield path
