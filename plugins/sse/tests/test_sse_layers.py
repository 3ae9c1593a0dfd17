"""runstream-sse's modules import one another only downward, with no cycle, counting every
import (module level, inside functions, under ``TYPE_CHECKING``), and no plugin touches a
private name of runstream's core."""

from __future__ import annotations

from pathlib import Path

from tests._layers import cycles, import_graph, private_core_names, upward_imports

ROOT = Path(__file__).resolve().parents[3]
SSE = ROOT / "plugins" / "sse" / "src" / "runstream_sse"

#: runstream-sse's layers, lowest first: a module imports only from layers below its own.
LAYERS: list[list[str]] = [
    # Wire format, and helpers that know nothing else of runstream-sse.
    ["_encoder", "_owners", "_signals", "_fastpath", "_binding", "_startup"],
    # Protocol adapters: pure encoders of records into other protocols' frames.
    ["_protocols", "_proto_bodies"],
    ["_proto_vercel", "_proto_agui", "_proto_openai"],
    ["_adapters"],
    ["_wire"],
    # Reading and writing a run's records in the event log(s).
    ["_feed", "_tee"],
    # The runs this process drives, and their one owner.
    ["_live"],
    ["_inflight"],
    ["_sink"],
    # HTTP: writing a buffer to a client, the responses, the router, the facade.
    ["_writer"],
    ["_serve"],
    ["_response", "_proto_http"],
    ["_stream", "_router"],
    ["_proto_complete"],
    ["_facade", "_plugin"],
    ["__init__"],
]


def test_runstream_sse_has_no_import_cycle() -> None:
    assert cycles(import_graph(SSE, "runstream_sse")) == []


def test_runstream_sse_imports_only_downward() -> None:
    assert upward_imports(import_graph(SSE, "runstream_sse"), LAYERS) == []


def test_no_plugin_touches_a_private_core_name() -> None:
    sources = sorted((ROOT / "plugins").glob("*/src"))
    assert sources
    assert private_core_names(sources) == []


def test_no_module_of_runstream_sse_is_over_400_lines() -> None:
    long = {p.name: n for p in SSE.glob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


def test_the_layer_check_sees_the_cycles_it_guards_against(tmp_path: Path) -> None:
    # The check itself: a lazy import and a TYPE_CHECKING import close a cycle all the same.
    (tmp_path / "_a.py").write_text("def f():\n    from ._b import g\n")
    (tmp_path / "_b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._a import f\n")
    graph = import_graph(tmp_path, "pkg")
    assert cycles(graph) == [["_a", "_b"]]
    assert upward_imports(graph, [["_a"], ["_b"]]) == ["_a (layer 0) imports _b (layer 1)"]
