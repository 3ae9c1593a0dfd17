"""MkDocs hook: fills the reference pages from the code, so they cannot drift from it.

A page that contains one of these markers on a line of its own gets it replaced:

- ``<!-- ref:config -->``  the config file's models and every installed component's options
- ``<!-- ref:hooks -->``   every hook spec in ``runstream/hookspecs.py`` with its docstring
- ``<!-- ref:cli -->``     ``--help`` of every ``runstream`` command
"""

from __future__ import annotations

import importlib
import inspect
import re
import textwrap
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

#: ``runstream._retry.Retry``: a class named by the private module it lives in.
_PRIVATE_PATH = re.compile(r"\b([a-z_]+)(?:\._\w+)+\.([A-Za-z]\w*)")


def _public_path(match: re.Match[str]) -> str:
    package, name = match.groups()
    exported = getattr(importlib.import_module(package), "__all__", ())
    return f"{package}.{name}" if name in exported else name


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    text = text.replace("typing.", "").replace("collections.abc.", "")
    return _PRIVATE_PATH.sub(_public_path, text)


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        if field.default_factory is not None:
            try:
                value = field.default_factory()  # type: ignore[call-arg]
            except TypeError:
                return "(computed)"
            if isinstance(value, BaseModel):
                return f"`{value.model_dump()}`"
            return f"`{value!r}`"
        return "**required**"
    return f"`{field.default!r}`"


def model_table(model: type[BaseModel], skip: tuple[str, ...] = ()) -> str:
    rows = ["| option | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | `{_type_name(field.annotation)}` | {_default(field)} | "
                    f"{desc} |")
    return "\n".join(rows)


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def _public_class(cls: type) -> str:
    """The class by its public path, linked to the API reference; private classes (built-in
    stores) by their name alone: the private module they live in is nobody's business."""
    package = cls.__module__.split(".")[0]
    if cls.__name__ in getattr(importlib.import_module(package), "__all__", ()):
        return f"[`{package}.{cls.__name__}`][{package}.{cls.__name__}]"
    return f"`{cls.__name__}`"


def config_reference() -> str:
    from runstream import ComponentConfig, Config, Limits, ParametersConfig, load_plugins

    # Strict: a plugin that fails to load fails the build instead of missing from the page.
    plugins = load_plugins(strict=True)
    out = ["## `runstream.yaml`", "", _doc(Config), "", model_table(Config), "",
           "Each component entry is " + _doc(ComponentConfig).split("\n")[0][0].lower()
           + _doc(ComponentConfig).replace("\n", " ")[1:], "",
           "### `limits`", "", _doc(Limits), "", model_table(Limits), "",
           "## `parameters`", "", _doc(ParametersConfig), "", model_table(ParametersConfig),
           ""]
    sections = [("Executors", "executor", plugins.executors, ()),
                ("Run log stores", "run_log_store", plugins.run_log_stores, ()),
                ("Sinks", "sinks[]", plugins.sinks, ()),
                ("Task types (YAML pipeline steps)", "steps[]", plugins.task_types, ())]
    for title, key, registry, skip in sections:
        out += [f"## {title}", ""]
        for name in registry.names():
            cls = registry.get(name)
            out += [f"### `{key}` type `{name}`", "",
                    f"{_public_class(cls)} (from plugin `{registry.owner(name)}`)", "",
                    _doc(cls), "", model_table(cls, skip), ""]
    return "\n".join(out)


def hooks_reference() -> str:
    from runstream import hookspecs

    out = [_doc(hookspecs), ""]
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(fn, "runstream_spec"):
            continue
        sig = str(inspect.signature(fn)).replace("'", "")
        out += [f"## `{name}`", "", "```python", f"def {name}{sig}", "```", "", _doc(fn), ""]
    return "\n".join(out)


def _cli_module() -> Any:
    """The module behind the ``runstream`` command, found by its entry point (wherever the
    refactors of the day put it)."""
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="runstream")
    return importlib.import_module(script.module)


def cli_reference() -> str:
    import argparse

    cli = _cli_module()
    parser = cli.build_parser()
    out = ["Generated from the CLI's own argument parser.", ""]

    def walk(p: argparse.ArgumentParser, title: str) -> None:
        out.extend([f"## `{title}`", "", "```text", p.format_help().rstrip(), "```", ""])
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{title} {name}")

    walk(parser, "runstream")
    out.append(textwrap.dedent(_doc(cli)))
    return "\n".join(out)


MARKERS = {
    "<!-- ref:config -->": config_reference,
    "<!-- ref:hooks -->": hooks_reference,
    "<!-- ref:cli -->": cli_reference,
}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
