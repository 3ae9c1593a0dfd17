from __future__ import annotations

import pytest
from runstream import Runtime
from runstream.testing import RuntimeFactory


@pytest.fixture
def runtime(runstream_runtime: RuntimeFactory) -> Runtime:
    """A runtime with the memory store and the installed plugins, closed after the test."""
    return runstream_runtime(entry_points=True)
