"""``runstream plugins --check``: validate installed plugins the way a plugin author needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ._errors import PluginError
from ._plugins import Plugins
from ._sinks import Sink
from ._task import Task


@dataclass
class PluginCheck:
    """The verdict on one plugin: ``problems`` empty means it passed."""

    name: str
    distribution: str | None
    status: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "distribution": self.distribution, "status": self.status,
                "ok": self.ok, "problems": self.problems, "notes": self.notes}


def _overrides(cls: type, base: type, *names: str) -> bool:
    return any(getattr(cls, n, None) is not getattr(base, n, None) for n in names)


def _construct(kind: str, name: str, cls: type[BaseModel], check: PluginCheck,
               defaults: dict[str, Any]) -> None:
    try:
        cls.model_validate(defaults)
    except ValidationError as exc:
        missing = [".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "missing"]
        others = [e for e in exc.errors() if e["type"] != "missing"]
        if others:
            check.problems.append(f"{kind} '{name}' does not construct with its defaults: "
                                  f"{others[0]['msg']} ({'.'.join(map(str, others[0]['loc']))})")
        elif missing:
            check.notes.append(f"{kind} '{name}' needs options: {', '.join(missing)}")
    except Exception as exc:
        check.problems.append(f"{kind} '{name}' raised {type(exc).__name__} when constructed: "
                              f"{exc}")


def check_plugins(plugins: Plugins) -> list[PluginCheck]:
    """Check every plugin: it loaded, its hooks match runstream's specs, what it registered
    constructs, and no name clashes (a clash makes the later plugin fail to register)."""
    checks: dict[str, PluginCheck] = {}
    for info in plugins.infos:
        check = PluginCheck(info.name, info.distribution, info.status)
        if info.status == "failed":
            check.problems.append(info.error or "failed to load")
        checks[info.name] = check

    manager = plugins.manager
    for hook_name in dir(manager.hook):
        caller = getattr(manager.hook, hook_name)
        if hook_name.startswith("_") or not hasattr(caller, "get_hookimpls"):
            continue
        if caller.spec is None:  # an @hookimpl whose name runstream does not define
            for impl in caller.get_hookimpls():
                target = checks.get(impl.plugin_name)
                if target is not None and not impl.optionalhook:
                    target.problems.append(
                        f"implements unknown hook '{hook_name}' (a typo? runstream's hooks "
                        "are listed in runstream/hookspecs.py)")

    # The event logs are imported (a reference that does not import is a problem) but not
    # constructed: their defaults may reach for a server.
    registries: list[tuple[str, str, dict[str, Any] | None]] = [
        ("task_types", "task type", {"name": "check"}),
        ("sinks", "sink", {}),
        ("executors", "executor", {}),
        ("run_log_stores", "run log store", {}),
        ("event_logs", "event log", None),
    ]
    for key, kind, defaults in registries:
        registry = plugins.registry(key)
        for name in registry.names():
            owner = checks.get(registry.owner(name))
            if owner is None:
                continue
            check = owner
            try:  # classes registered by reference are imported here, the only place at once
                cls = registry.get(name)
            except PluginError as exc:
                check.problems.append(str(exc))
                continue
            if defaults is None:
                continue
            _construct(kind, name, cls, check, defaults)
            if key == "task_types" and not _overrides(cls, Task, "execute", "run"):
                check.problems.append(f"task type '{name}' implements neither execute() nor "
                                      "run()")
            if key == "sinks" and not _overrides(cls, Sink, "send"):
                check.problems.append(f"sink '{name}' does not implement send()")
    return list(checks.values())
