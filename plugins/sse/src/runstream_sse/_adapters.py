"""The protocol adapters by name (docs/protocols.md)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from ._proto_agui import AGUIAdapter
from ._proto_openai import OpenAIAdapter
from ._proto_vercel import VercelAdapter
from ._protocols import ProtocolAdapter

__all__ = ["ADAPTERS", "make_adapter"]

#: The adapter class of each protocol besides runstream's own (read-only).
ADAPTERS: Final[Mapping[str, type[ProtocolAdapter]]] = MappingProxyType({
    adapter.name: adapter for adapter in (VercelAdapter, AGUIAdapter, OpenAIAdapter)})


def make_adapter(protocol: str, *, run_id: str, **options: Any) -> ProtocolAdapter:
    """A fresh adapter of ``protocol`` for one run; ``options`` are the adapter's own (a
    :class:`ChatRequest`'s ``options``). Raises ``ValueError`` for an unknown protocol."""
    try:
        adapter = ADAPTERS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}; protocols: runstream, "
                         f"{', '.join(sorted(ADAPTERS))}") from None
    return adapter(run_id=run_id, **options)
