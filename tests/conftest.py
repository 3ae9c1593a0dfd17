from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import runstream.testing
from runstream import Config, Runtime
from runstream.testing import make_runtime


@pytest.fixture
def memory_config() -> Config:
    """A config with the in-memory run log store and no sinks."""
    return runstream.testing.memory_config()


@pytest.fixture
async def runtime(memory_config: Config) -> AsyncIterator[Runtime]:
    """A runtime with the memory store; plugins from entry points (installed workspace)."""
    rt = make_runtime(config=memory_config, entry_points=True)
    yield rt
    await rt.aclose()


@pytest.fixture
def in_tmp_cwd(runstream_cwd: Path) -> Path:
    """runstream.testing's `runstream_cwd`, under the name the core tests use."""
    return runstream_cwd
