"""The core's modules in layers, imports only downward (every import counts: module level, in a
function, under TYPE_CHECKING); no cycles anywhere; small modules; plugins use public names only
(issue 11). docs/architecture.md describes these layers."""

from __future__ import annotations

from pathlib import Path

from tests._layers import cycles, import_graph, private_core_names, upward_imports

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core" / "src" / "runstream"

#: Lowest first. A module may import modules of its own layer or below, never above.
CORE_LAYERS = [
    # foundations: plain data and helpers, no runs
    ["_errors", "_json", "_validation", "_size", "_owner", "_secrets", "_names", "_hotpath",
     "_threads", "_sqlite_batch"],
    ["_runlog", "_events", "_channel", "_yaml_load", "_retry", "_imports", "_packed"],
    ["_config", "_params"],
    # contracts that plugins subclass
    ["_task", "_sinks", "_store", "_eventlog", "_executor", "hookspecs", "_watchdog"],
    # assembly: registries, plugins, built-in stores, the runtime and its services
    ["_registry", "_store_fs", "_store_memory", "_kept", "_eventlog_memory", "_store_sqlite",
     "_recorder", "_leases"],
    ["_builtins"],
    ["_plugins"],
    ["_runtime"],
    # the engine: a run's state and frames, recording, the step lifecycle, driving a run
    ["_run"],
    ["_recording", "_steps"],
    ["_drive", "_remote"],
    # composition: branches and composite nodes
    ["_branch"],
    ["_nodes"],
    # front-ends
    ["_pipeline"],
    ["_yaml_pipeline", "_reads", "_store_contract", "testing", "_plugin_check"],
    ["_refs"],
    ["_worker"],
    ["_cli_run", "_cli_worker"],
    ["_cli", "__init__"],
]


def test_core_has_no_import_cycle() -> None:
    assert cycles(import_graph(CORE, "runstream")) == []


def test_core_imports_only_downward() -> None:
    assert upward_imports(import_graph(CORE, "runstream"), CORE_LAYERS) == []


def test_no_plugin_has_an_import_cycle() -> None:
    for src in sorted(ROOT.glob("plugins/*/src/*")):
        if src.is_dir():
            assert cycles(import_graph(src, src.name)) == [], src.name


def test_no_module_over_400_lines() -> None:
    sources = [*CORE.glob("*.py"), *ROOT.glob("plugins/*/src/*/*.py"),
               *ROOT.glob("examples/**/*.py")]
    long = {str(p.relative_to(ROOT)): n for p in sources
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


def test_plugins_use_public_core_names_only() -> None:
    dirs = [*ROOT.glob("plugins/*/src"), ROOT / "examples"]
    assert private_core_names(dirs) == []
