"""The peers of the peer benchmark (their venvs, protocols and the packages whose versions the
report names), and two checks ``run.py`` makes before it measures.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEERS_DIR = Path(__file__).resolve().parent
REPO = PEERS_DIR.parents[1]


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    protocol: str
    packages: tuple[str, ...]

    @property
    def python(self) -> str:
        if self.name == "runstream":
            return sys.executable
        return str(PEERS_DIR / ".venvs" / self.name / "bin" / "python")


SERVER_PACKAGES = ("starlette", "uvicorn", "uvloop", "httptools")
PEERS = [
    Peer("runstream", "runstream (sse.response)", "runstream",
         ("runstream", "runstream-sse", "fastapi", "pydantic")),
    Peer("fastapi_sse", "FastAPI fastapi.sse by hand", "json", ("fastapi", "pydantic")),
    Peer("sse_starlette", "sse-starlette", "json", ("sse-starlette",)),
    Peer("langgraph", "LangGraph (stream_mode=custom)", "json",
         ("langgraph", "langgraph-checkpoint", "sse-starlette")),
    Peer("pydantic_ai", "pydantic-ai (Vercel AI adapter)", "vercel",
         ("pydantic-ai-slim", "pydantic")),
    Peer("haystack", "Haystack (Pipeline.stream)", "json", ("haystack-ai", "sse-starlette")),
    Peer("llamaindex", "LlamaIndex workflows", "json", ("llama-index-workflows",
                                                         "sse-starlette")),
]


def check_mirror() -> None:
    """``_chat.mock_llm_stream`` must say and wait exactly what the example's mock does."""
    import _chat

    sys.path.insert(0, str(REPO))
    from examples.fastapi_llm import llm_mock

    async def trace(gen: Any) -> list[Any]:
        out: list[Any] = []
        real_sleep = asyncio.sleep

        async def fake_sleep(delay: float, result: Any = None) -> Any:
            out.append(("sleep", round(delay, 6)))
            return result

        asyncio.sleep = fake_sleep  # type: ignore[assignment]
        try:
            async for item in gen:
                out.append(item)
        finally:
            asyncio.sleep = real_sleep
        return out

    for prompt in ("p", "hello, how are you?", "x" * 80, "peer-c1-w2-n3" + _chat.ABANDON_MARK):
        mine = asyncio.run(trace(_chat.mock_llm_stream(prompt)))
        theirs = asyncio.run(trace(llm_mock.mock_llm_stream(prompt)))
        if mine != theirs:
            raise SystemExit(f"bench/peers/_chat.py no longer mirrors llm_mock.py for {prompt!r}")


def versions(peer: Peer) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, platform, sys\n"
            "out = {'python': platform.python_version()}\n"
            "for name in sys.argv[1:]:\n"
            "    try: out[name] = m.version(name)\n"
            "    except m.PackageNotFoundError: out[name] = 'missing'\n"
            "print(json.dumps(out))")
    result = subprocess.run([peer.python, "-c", code, *peer.packages, *SERVER_PACKAGES],
                            capture_output=True, text=True, timeout=60)
    return json.loads(result.stdout) if result.returncode == 0 else {"error": result.stderr}
