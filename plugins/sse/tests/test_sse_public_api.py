"""runstream-sse's public surface, and its registration through the real entry point."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import runstream_sse
from runstream import Config, Runtime


def test_all_is_sorted_complete_and_documented() -> None:
    assert runstream_sse.__all__ == sorted(runstream_sse.__all__)
    exported = set(runstream_sse.__all__)
    missing = []
    for mod in pkgutil.iter_modules(runstream_sse.__path__):
        assert mod.name.startswith("_"), f"public module {mod.name}: keep modules private"
        module = importlib.import_module(f"runstream_sse.{mod.name}")
        missing += [f"{mod.name}.{n}" for n in getattr(module, "__all__", [])
                    if n not in exported]
    assert missing == []
    for name in runstream_sse.__all__:
        obj = getattr(runstream_sse, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"runstream_sse.{name} has no docstring"
            for attr, member in vars(obj).items() if inspect.isclass(obj) else []:
                if not attr.startswith("_") and inspect.isfunction(member):
                    assert member.__doc__, f"runstream_sse.{name}.{attr} has no docstring"


def test_every_public_name_is_loaded_lazily_from_its_module() -> None:
    # runstream loads runstream_sse._plugin (and so this package) in every process: the package
    # imports its modules, and Starlette, only when a name is first used.
    assert sorted(runstream_sse._WHERE) == runstream_sse.__all__
    for name, module in runstream_sse._WHERE.items():
        assert getattr(importlib.import_module(f"runstream_sse.{module}"), name) \
            is getattr(runstream_sse, name)
    assert {n for n in dir(runstream_sse) if not n.startswith("_")} == set(runstream_sse.__all__)


def test_sse_response_keeps_the_agreed_signature() -> None:
    params = inspect.signature(runstream_sse.sse_response).parameters
    assert list(params) == ["pipeline", "parameters", "config", "run_id", "on_disconnect",
                            "lifecycle", "ping_interval", "send_timeout", "owner", "protocol",
                            "options"]
    assert params["protocol"].default == "runstream"
    assert params["owner"].default == runstream_sse.ANONYMOUS
    assert params["on_disconnect"].default == "cancel"
    assert params["ping_interval"].default == 15.0
    assert params["send_timeout"].default == 30.0
    router = inspect.signature(runstream_sse.runs_router).parameters
    # replay= went with the ReplayBuffer: the events live in the runtime's event log (issue 12).
    assert list(router)[:3] == ["config", "prefix", "ping_interval"]
    assert router["prefix"].default == "/runs"
    assert router["authorize"].default is None


async def test_the_sse_sink_is_registered_through_the_entry_point(memory_config: Config) -> None:
    runtime = Runtime(memory_config, entry_points=True)
    try:
        assert runtime.plugins.sinks.get_for_config("sse", "test") is runstream_sse.SSESink
    finally:
        await runtime.aclose()
