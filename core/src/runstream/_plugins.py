"""Plugin discovery (stevedore, entry-point group ``runstream``) and registration (pluggy)."""

from __future__ import annotations

import inspect
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from ._errors import PluginError
from ._eventlog import EventLog
from ._executor import Executor
from ._registry import Registry
from ._sinks import Sink
from ._store import RunLogStore
from ._task import Task

if TYPE_CHECKING:
    import importlib.metadata

__all__ = ["PluginInfo", "Plugins", "load_plugins"]

logger = logging.getLogger("runstream.plugins")

ENTRY_POINT_GROUP = "runstream"
LOAD_ENV = "RUNSTREAM_LOAD_PLUGINS"
BLOCK_ENV = "RUNSTREAM_BLOCK_PLUGINS"
STRICT_ENV = "RUNSTREAM_STRICT_PLUGINS"

#: Registration hook name -> the key it reports under.
REGISTRATION_HOOKS = {
    "register_task_types": "task_types",
    "register_sinks": "sinks",
    "register_executors": "executors",
    "register_run_log_stores": "run_log_stores",
    "register_event_logs": "event_logs",
}


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def _name_list(value: str) -> set[str]:
    return {_norm(x) for x in value.split(",") if x.strip()}


@dataclass
class PluginInfo:
    """What ``runstream plugins`` reports about one plugin."""

    name: str
    distribution: str | None
    version: str | None
    module: str | None
    status: str  # "loaded" | "failed" | "blocked" | "not allowed" | "builtin"
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "distribution": self.distribution, "version": self.version,
            "module": self.module, "status": self.status, "error": self.error,
            "registered": self.registered,
        }


@dataclass
class Plugins:
    """A plugin manager with its plugins loaded and their components registered."""

    manager: pluggy.PluginManager
    infos: list[PluginInfo]
    task_types: Registry[Task]
    sinks: Registry[Sink]
    executors: Registry[Executor]
    run_log_stores: Registry[RunLogStore]
    event_logs: Registry[EventLog]

    def registry(self, key: str) -> Registry[Any]:
        return getattr(self, key)  # type: ignore[no-any-return]

    def has_impls(self, hook: str) -> bool:
        return bool(getattr(self.manager.hook, hook).get_hookimpls())


def _load_entry_points(manager: pluggy.PluginManager, strict: bool, infos: list[PluginInfo]
                       ) -> None:
    from stevedore import ExtensionManager

    allow_raw = os.environ.get(LOAD_ENV)
    allow = None if allow_raw is None else _name_list(allow_raw)
    block = _name_list(os.environ.get(BLOCK_ENV, ""))
    # Keyed by (name, module): two distributions may pick the same entry-point name.
    by_ep: dict[tuple[str, str], PluginInfo] = {}
    taken = {info.name for info in infos}

    import importlib.metadata  # on first use: it costs as much as the rest of this module

    # stevedore may hand back cached entry points that lost their distribution: look it up.
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    dists = {(e.name, e.value): e.dist for e in found}
    shared_names = Counter(e.name for e in found)

    def info_for(ep: importlib.metadata.EntryPoint) -> PluginInfo:
        dist = getattr(ep, "dist", None) or dists.get((ep.name, ep.value))
        name = ep.name
        # Plugin names key pluggy and the credits, so they must be unique: an entry-point name
        # that several distributions use is qualified with the distribution, for all of them.
        if name in taken or shared_names[name] > 1:
            name = f"{dist.name if dist else ep.value}:{ep.name}"
        taken.add(name)
        info = PluginInfo(name=name, distribution=dist.name if dist else None,
                          version=dist.version if dist else None, module=ep.value,
                          status="loaded")
        by_ep[ep.name, ep.value] = info
        infos.append(info)
        return info

    class _Manager(ExtensionManager[Any]):
        # Filter before import: a blocked plugin's code never runs.
        def _load_one_plugin(self, ep: importlib.metadata.EntryPoint, *args: Any,
                             **kwargs: Any) -> Any:
            info = info_for(ep)
            dist = _norm(info.distribution or ep.name)
            if dist in block or _norm(ep.name) in block:
                info.status = "blocked"
                return None
            if allow is not None and dist not in allow and _norm(ep.name) not in allow:
                info.status = "not allowed"
                return None
            return super()._load_one_plugin(ep, *args, **kwargs)

    def on_failure(_mgr: Any, ep: importlib.metadata.EntryPoint, err: BaseException) -> None:
        info = by_ep.get((ep.name, ep.value)) or info_for(ep)
        info.status = "failed"
        info.error = f"{type(err).__name__}: {err}"
        if strict:  # the error is the report: no second line from the logger
            raise PluginError(f"plugin '{info.name}' ({ep.value}) failed to load: {info.error}")
        logger.warning("runstream plugin '%s' failed to load: %s", info.name, info.error)

    _check_names(found, allow, block, strict)
    extensions = _Manager(ENTRY_POINT_GROUP, invoke_on_load=False,
                          on_load_failure_callback=on_failure)
    for ext in extensions:
        info = by_ep[ext.name, ext.entry_point.value]
        try:
            manager.register(ext.plugin, name=info.name)
        except ValueError as exc:  # same module registered twice, or a name clash
            info.status = "failed"
            info.error = f"cannot register: {exc}"
            if strict:
                raise PluginError(f"plugin '{info.name}': {info.error}") from None
        except pluggy.PluginValidationError as exc:
            info.status = "failed"
            info.error = f"invalid hook implementation: {exc}"
            if strict:
                raise PluginError(f"plugin '{info.name}': {info.error}") from None
            logger.warning("runstream plugin '%s' is invalid: %s", info.name, exc)


def _check_names(found: Sequence[importlib.metadata.EntryPoint], allow: set[str] | None,
                 block: set[str], strict: bool) -> None:
    """A name in RUNSTREAM_LOAD_PLUGINS / RUNSTREAM_BLOCK_PLUGINS that matches no installed
    plugin is a typo until shown otherwise: say so (strict mode: fail), naming the installed."""
    known = {"runstream"}
    installed: set[str] = set()
    for ep in found:
        dist = getattr(ep, "dist", None)
        known.add(_norm(ep.name))
        if dist is not None:
            known.add(_norm(dist.name))
            installed.add(dist.name)
        else:
            installed.add(ep.name)
    listing = ", ".join(sorted(installed)) or "none"
    for env, names in ((LOAD_ENV, allow or set()), (BLOCK_ENV, block)):
        for name in sorted(names - known):
            message = (f"{env} names '{name}', which is not an installed runstream plugin; "
                       f"installed plugins: {listing}")
            if strict:
                raise PluginError(message)
            logger.warning("runstream: warning: %s", message)


def load_plugins(
    plugins: Sequence[object] = (),
    *,
    entry_points: bool = True,
    strict: bool | None = None,
) -> Plugins:
    """Build a plugin manager: built-ins, then ``plugins`` given here, then entry points.

    ``strict`` (default: ``$RUNSTREAM_STRICT_PLUGINS`` set to a true value) turns any plugin
    failure into a :class:`PluginError` instead of a report.
    """
    from . import _builtins

    if strict is None:
        strict = os.environ.get(STRICT_ENV, "").lower() in {"1", "true", "yes", "on"}
    manager = pluggy.PluginManager("runstream")
    manager.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    manager.register(_builtins, name="runstream")
    infos.append(PluginInfo(name="runstream", distribution="runstream", version=_version(),
                            module="runstream._builtins", status="builtin"))
    for i, plugin in enumerate(plugins):
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{i}"
        try:
            manager.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"cannot register plugin {name}: {exc}") from None
        infos.append(PluginInfo(name=name, distribution=None, version=None, module=name,
                                status="loaded"))
    if entry_points:
        _load_entry_points(manager, strict, infos)

    result = Plugins(
        manager=manager, infos=infos,
        task_types=Registry("task type", Task),
        sinks=Registry("sink", Sink),
        executors=Registry("executor", Executor),
        run_log_stores=Registry("run log store", RunLogStore),
        event_logs=Registry("event log", EventLog),
    )
    for key in REGISTRATION_HOOKS.values():
        result.registry(key).unknown_hint = partial(_skipped_hint, infos)
    _register_components(result, strict)
    return result


def _skipped_hint(infos: Sequence[PluginInfo], name: str) -> str:
    """For an unknown name: the plugins RUNSTREAM_LOAD_PLUGINS / RUNSTREAM_BLOCK_PLUGINS kept
    out, which may be where it comes from. Their code never ran, so what they register is
    unknown; a plugin whose entry-point or distribution name is the name itself (runstream-x
    registering `x`) is named as its owner."""
    why = {"blocked": f"{BLOCK_ENV} blocks", "not allowed": f"{LOAD_ENV} does not list"}
    skipped = [i for i in infos if i.status in why]
    if not skipped:
        return ""
    target = _norm(name)
    for info in skipped:
        dist = info.distribution or info.name
        if target in {_norm(info.name.rpartition(":")[2]), _norm(dist),
                      _norm(dist).removeprefix("runstream-")}:
            return f"; '{name}' belongs to {dist}, which {why[info.status]}"
    parts = []
    for status, label in why.items():
        names = sorted({i.distribution or i.name for i in skipped if i.status == status})
        if names:
            parts.append(f"{label} {', '.join(names)}")
    which = "it may register it" if len(skipped) == 1 else "one of them may register it"
    return f" ({'; '.join(parts)}: {which})"


def _register_components(plugins: Plugins, strict: bool) -> None:
    by_name = {info.name: info for info in plugins.infos}
    for hook_name, key in REGISTRATION_HOOKS.items():
        registry = plugins.registry(key)
        hook = getattr(plugins.manager.hook, hook_name)
        # Called one implementation at a time so that each registration is credited to its
        # plugin (for `runstream plugins`) and one plugin's mistake does not stop the others.
        # In registration order (built-ins, then plugins given in code, then entry points), not
        # pluggy's LIFO call order: on a name clash the built-in keeps its name and the plugin
        # that came later is the one reported, instead of silently taking over e.g. `sqlite`.
        for impl in hook.get_hookimpls():
            info = by_name.get(impl.plugin_name)

            def register(name: str, cls: type[Any] | str, _owner: str = impl.plugin_name,
                         _info: PluginInfo | None = info, _key: str = key,
                         _registry: Registry[Any] = registry) -> None:
                _registry.register(name, cls, owner=_owner)
                if _info is not None:
                    _info.registered.setdefault(_key, []).append(name)

            try:
                result = impl.function(register=register)
                if inspect.isawaitable(result):
                    if inspect.iscoroutine(result):
                        result.close()  # never awaited: close it so Python does not warn
                    raise PluginError(f"{hook_name} must be a plain function, not async: "
                                      "registration happens while the runtime is built")
            except Exception as exc:
                message = f"{hook_name} failed: {type(exc).__name__}: {exc}"
                if strict:
                    raise PluginError(f"plugin '{impl.plugin_name}': {message}") from exc
                logger.warning("runstream plugin '%s': %s", impl.plugin_name, message)
                _drop(plugins, impl.plugin_name)
                if info is not None:
                    info.status = "failed"
                    info.error = message
                    info.registered.clear()


def _drop(plugins: Plugins, name: str) -> None:
    """Take a plugin whose registration failed out entirely: a half-registered plugin (some
    names in, its lifecycle hooks active) is worse than none. Built-ins are never dropped."""
    if name == "runstream":
        return
    for key in REGISTRATION_HOOKS.values():
        plugins.registry(key).remove_owner(name)
    if plugins.manager.has_plugin(name):
        plugins.manager.unregister(name=name)


def _version() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version("runstream")
    except importlib.metadata.PackageNotFoundError:
        return None
