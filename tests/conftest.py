from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from runstream import ComponentConfig, Config, Runtime


@pytest.fixture
def memory_config() -> Config:
    """A config with the in-memory run log store and no sinks."""
    return Config(run_log_store=ComponentConfig(type="memory"))


@pytest.fixture
async def runtime(memory_config: Config) -> AsyncIterator[Runtime]:
    """A runtime with the memory store; plugins from entry points (installed workspace)."""
    rt = Runtime(memory_config)
    yield rt
    await rt.aclose()


@pytest.fixture
def in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run the test in an empty working directory (so .runstream/ lands in tmp)."""
    monkeypatch.chdir(tmp_path)
    for var in ("RUNSTREAM_CONFIGURATION_FILE", "RUNSTREAM_LOAD_PLUGINS",
                "RUNSTREAM_BLOCK_PLUGINS", "RUNSTREAM_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
