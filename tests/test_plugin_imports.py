"""Every runtime loads every installed plugin, so a plugin's SDK must cost only the processes
whose config uses it: runstream-redis, -taskiq, -postgres and -stdout register their classes by
reference (issue 16's RSS target). Checked in fresh interpreters, the workspace's real entry
points installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

#: The SDKs of the plugins that register by reference; none of them is cheap to import.
SDKS = ["psycopg", "psycopg_pool", "redis", "rich", "taskiq"]
#: What runstream-sse's modules import (its `sse` sink does not): only for processes that serve
#: HTTP.
WEB = ["fastapi", "starlette"]

#: registry -> name, the reference each plugin registers, and the SDK that name brings in.
BY_REFERENCE = [("event_logs", "redis", "runstream_redis._log:RedisEventLog", "redis"),
                ("executors", "taskiq", "runstream_taskiq._executor:TaskiqExecutor", "taskiq"),
                ("run_log_stores", "postgres", "runstream_postgres._store:PostgresStore",
                 "psycopg"),
                ("sinks", "stdout", "runstream_stdout._sink:StdoutSink", "rich")]


def python(cwd: Path, script: str, *args: str) -> Any:
    """Run ``script`` in a fresh interpreter with every installed plugin allowed; its last line
    of output, as JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_a_default_runtime_imports_no_plugin_sdk_and_each_name_imports_its_own(
        tmp_path: Path) -> None:
    result = python(tmp_path, """
        import json, sys
        from runstream import Runtime

        SDKS, WEB, BY_REFERENCE = json.loads(sys.argv[1])
        runtime = Runtime()  # sqlite store, memory event log, no sink: uses none of them
        seen = {"default runtime": [m for m in SDKS + WEB if m in sys.modules]}
        for key, name, ref, sdk in BY_REFERENCE:
            registry = runtime.plugins.registry(key)
            seen[name] = [name in registry, registry.reference(name)]
            cls = registry.get(name)
            seen[name] += [f"{cls.__module__}:{cls.__qualname__}", sdk in sys.modules]
        print(json.dumps(seen))
    """, json.dumps([SDKS, WEB, BY_REFERENCE]))

    assert result.pop("default runtime") == []
    assert result == {name: [True, ref, ref, True] for _key, name, ref, _sdk in BY_REFERENCE}


def test_plugins_listing_names_every_plugin_without_importing_their_sdks(
        tmp_path: Path) -> None:
    result = python(tmp_path, """
        import contextlib, io, json, sys
        from runstream._cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["plugins", "--json"])
        listing = {p["distribution"]: [p["status"], p["registered"]]
                   for p in json.loads(out.getvalue())}
        print(json.dumps([code, listing, [m for m in json.loads(sys.argv[1]) if m in sys.modules]]))
    """, json.dumps(SDKS + WEB))

    code, listing, imported = result
    assert code == 0
    assert imported == []
    assert listing["runstream-redis"] == ["loaded", {"event_logs": ["redis"]}]
    assert listing["runstream-taskiq"] == ["loaded", {"executors": ["taskiq"]}]
    assert listing["runstream-postgres"] == ["loaded", {"run_log_stores": ["postgres"]}]
    assert listing["runstream-stdout"] == ["loaded", {"sinks": ["stdout"]}]
    assert listing["runstream-sse"] == ["loaded", {"sinks": ["sse"]}]
    assert {status for status, _ in listing.values()} == {"builtin", "loaded"}


def test_plugins_check_imports_every_reference_and_passes(tmp_path: Path) -> None:
    result = python(tmp_path, """
        import contextlib, io, json, sys
        from runstream._cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["plugins", "--check", "--json"])
        checks = {c["distribution"]: c["problems"] for c in json.loads(out.getvalue())}
        print(json.dumps([code, checks, [m for m in json.loads(sys.argv[1]) if m in sys.modules]]))
    """, json.dumps(SDKS))

    code, checks, imported = result
    assert (code, imported) == (0, SDKS)
    assert {dist: problems for dist, problems in checks.items() if problems} == {}
