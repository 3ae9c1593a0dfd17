"""MkDocs hook: fills the reference pages from the code, so they cannot drift from it.

A page that contains one of these markers on a line of its own gets it replaced:

- ``<!-- ref:config -->``  the config file's models and every installed component's options
- ``<!-- ref:hooks -->``   every hook spec in ``runstream/hookspecs.py`` with its docstring
- ``<!-- ref:cli -->``     ``--help`` of every ``runstream`` command
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.replace("typing.", "").replace("collections.abc.", "")


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


def config_reference() -> str:
    from runstream import Config, Limits, ParametersConfig, Runtime
    from runstream._config import ComponentConfig

    runtime = Runtime(Config.model_validate({"run_log_store": {"type": "memory"}}))
    plugins = runtime.plugins
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
                    f"`{cls.__module__}.{cls.__qualname__}` (from plugin "
                    f"`{registry.owner(name)}`)", "", _doc(cls), "", model_table(cls, skip), ""]
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


def cli_reference() -> str:
    import argparse

    from runstream._cli import build_parser

    parser = build_parser()
    out = ["Generated from the CLI's own argument parser.", ""]

    def walk(p: argparse.ArgumentParser, title: str) -> None:
        out.extend([f"## `{title}`", "", "```text", p.format_help().rstrip(), "```", ""])
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{title} {name}")

    walk(parser, "runstream")
    out.append(textwrap.dedent(_doc(__import__("runstream._cli", fromlist=["x"]))))
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
