"""The plugin registers the ``redis`` event log by reference: loading it (every runtime does)
does not import redis-py, a config that picks ``redis`` does, and that runtime works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests._redis_server import RedisServer

SCRIPT = """
import asyncio, json, sys
from runstream import Config, Runtime

async def main(url, prefix):
    seen = {"plugin loaded": "redis" in sys.modules}
    Runtime()  # the default config: loads runstream-redis, does not use it
    seen["default runtime"] = "redis" in sys.modules
    config = Config.model_validate({"event_log": {"type": "redis", "url": url,
                                                  "key_prefix": prefix}})
    async with Runtime(config) as runtime:
        seen["redis runtime"] = "redis" in sys.modules
        log = runtime.event_log
        seen["log"] = type(log).__name__
        await log.create("r1", pipeline="p", owner=None)
        await log.append("r1", [(1, 0.0, "step.event", "s", {"text": "hi"})])
        await log.end("r1", "completed")
        seen["read back"] = [[r[0], r[4]] async for batch in log.read("r1", follow=False)
                             for r in batch]
    print(json.dumps(seen))

asyncio.run(main(*sys.argv[1:]))
"""


def test_a_config_naming_redis_imports_it_and_works(redis_server: RedisServer, prefix: str,
                                                    tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT), redis_server.url,
                           prefix], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=120, check=True)

    assert json.loads(done.stdout) == {
        "plugin loaded": False, "default runtime": False, "redis runtime": True,
        "log": "RedisEventLog", "read back": [[1, {"text": "hi"}]]}
