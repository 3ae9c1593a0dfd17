"""The Python API reference: one page per public package, generated from its ``__all__``.

Two parts, in one file because they share the list of packages:

- an MkDocs hook that writes ``reference/api/<package>.md`` for ``runstream``,
  ``runstream.testing`` and every package under ``plugins/*/src/``, with one
  ``::: <package>.<name>`` block (mkdocstrings) for each name of its ``__all__``, and adds the
  pages to the navigation under "Reference > Python API". A new public name, or a new plugin,
  appears without editing any markdown.
- a griffe extension, :class:`PublicNames`, so those blocks find every name by its public path
  (``runstream.AsyncPipeline``) whatever the package's ``__init__`` looks like: a name that the
  static analysis of ``__init__`` does not see (loaded lazily, from a table) becomes an alias to
  the private module that defines it. Pages never name a private module, so rearranging private
  modules cannot break them. It also turns the reST roles of docstrings (``:class:`Event```)
  into links to the reference, or into code when the target is not a public name.
"""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import griffe
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
PAGES = "reference/api"


def packages() -> dict[str, str]:
    """Public package -> its distribution, in the order of the navigation."""
    found = {"runstream": "runstream", "runstream.testing": "runstream"}
    for init in sorted(ROOT.glob("plugins/*/src/*/__init__.py")):
        project = tomllib.loads((init.parents[2] / "pyproject.toml").read_text())["project"]
        found[init.parent.name] = project["name"]
    return found


def public_names(package: str) -> list[str]:
    """The package's ``__all__``, read at run time (however the package builds it)."""
    return list(importlib.import_module(package).__all__)


def page_uri(package: str) -> str:
    return f"{PAGES}/{package}.md"


# --- reST roles -> Markdown ------------------------------------------------------------------

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|exc|mod|obj|const):`([^`]+)`")
#: reST's "paragraph::" before an indented literal block; Markdown keeps the block, not the "::".
LITERAL = re.compile(r"(?<=\S)::$", re.MULTILINE)
#: A reST definition list item whose term is a literal: ````name```` then indented lines.
DEFINITION = re.compile(r"^``([^`\n]+)``\n((?:[ ]{2,}\S.*(?:\n|$))+)", re.MULTILINE)


def _definition(match: re.Match[str]) -> str:
    body = " ".join(line.strip() for line in match.group(2).splitlines())
    return f"- ``{match.group(1)}``: {body}\n"


def _public_paths() -> set[str]:
    return {f"{pkg}.{name}" for pkg in packages() for name in public_names(pkg)}


def roles_to_markdown(text: str, package: str, public: set[str]) -> str:
    """``:class:`Event``` -> a link to ``runstream.Event`` when that is a public name, or else
    the target as code (``Channel.batches``, a private helper, a method); ``text::`` before a
    literal block -> ``text:``; a definition list of literals -> a bullet list."""

    def replace(match: re.Match[str]) -> str:
        target = match.group(1).lstrip("~!")
        shown = target.rsplit(".", 1)[-1] if match.group(1).startswith("~") else target
        for path in (target, f"{package}.{target}", f"runstream.{target}"):
            if path in public:
                return f"[`{shown}`][{path}]"
        return f"`{shown}`"

    return DEFINITION.sub(_definition, LITERAL.sub(":", ROLE.sub(replace, text)))


# --- the griffe extension ----------------------------------------------------------------------


class PublicNames(griffe.Extension):
    """Aliases for public names that ``__init__`` exports lazily; readable docstrings."""

    def __init__(self) -> None:
        super().__init__()
        self._public = _public_paths()

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader,
                   **kwargs: Any) -> None:
        for module in _walk(pkg):
            if module.path in packages():
                self._alias_missing(module)
        for obj in _walk_objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = roles_to_markdown(obj.docstring.value, pkg.path,
                                                        self._public)

    def _alias_missing(self, module: griffe.Module) -> None:
        for name in public_names(module.path):
            if name in module.members:
                continue
            where = _defined_in(module, name)
            if where is not None:
                module.set_member(name, griffe.Alias(name, where.members[name], parent=module))


def _walk(module: griffe.Module) -> list[griffe.Module]:
    out = [module]
    for sub in module.modules.values():
        if not sub.is_alias:
            out += _walk(sub)
    return out


def _walk_objects(obj: griffe.Object) -> list[griffe.Object]:
    out = [obj]
    for member in obj.members.values():
        if not member.is_alias and isinstance(member, griffe.Object):
            out += _walk_objects(member)
    return out


def _defined_in(package: griffe.Module, name: str) -> griffe.Module | None:
    """The submodule that defines ``name`` itself (not by importing it); when several do, the
    one the object says it comes from."""
    defining = [m for m in _walk(package)[1:]
                if name in m.members and not m.members[name].is_alias]
    if len(defining) > 1:
        value = getattr(importlib.import_module(package.path), name)
        home = getattr(value, "__module__", None)
        defining = [m for m in defining if m.path == home] or defining
    return defining[0] if defining else None


# --- the MkDocs hook ---------------------------------------------------------------------------


def page(package: str, distribution: str) -> str:
    module = importlib.import_module(package)
    intro = roles_to_markdown(inspect.cleandoc(module.__doc__ or ""), package, _public_paths())
    out = [f"# `{package}`", "", f"In the distribution `{distribution}`; import every name "
           f"below from `{package}`.", "", intro, ""]
    for name in sorted(public_names(package), key=lambda n: (n.startswith("_"), n.lower())):
        out += [f"::: {package}.{name}", ""]
    return "\n".join(out)


def on_config(config: Any, **kwargs: Any) -> Any:
    api = [{pkg: page_uri(pkg)} for pkg in packages()]
    for entry in config.nav or []:
        if isinstance(entry, dict) and "Reference" in entry:
            entry["Reference"].append({"Python API": api})
            break
    else:
        raise ValueError("mkdocs.yml's nav needs a 'Reference' section for the Python API pages")
    return config


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    for package, distribution in packages().items():
        files.append(File.generated(config, page_uri(package),
                                    content=page(package, distribution)))
    return files
