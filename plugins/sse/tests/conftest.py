"""The SSE tests use the core suite's fixtures (a memory-store config and runtime, an empty
working directory): the same ones, not copies."""

from __future__ import annotations

from tests.conftest import in_tmp_cwd, memory_config, runtime

__all__ = ["in_tmp_cwd", "memory_config", "runtime"]
