"""The taskiq recipe of docs/deploy.md, run as written (with this test's ports and servers:
the session's redis-server and PostgreSQL replace the recipe's first step)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests._cluster import free_port
from tests._mock_llm_plan import plan_answer

from ._taskiq_cluster import ROOT, Shared, child_env


def recipe() -> str:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- recipe: taskiq -->\n```bash\n(.*?)```", text, re.S)
    assert block is not None, "the recipe block is gone from docs/deploy.md"
    return block.group(1)


def test_the_deploy_recipe_starts_workers_and_web_processes(shared: Shared,
                                                            tmp_path: Path) -> None:
    script = recipe()
    assert "redis-server --port 6379" in script
    redis_port = shared.redis_url.rsplit(":", 1)[1].split("/")[0]
    web = [str(free_port()), str(free_port())]
    script = (script.replace("redis-server --port 6379 --daemonize yes", ": servers are up")
              .replace("127.0.0.1:6379", f"127.0.0.1:{redis_port}")
              .replace("postgresql://postgres@127.0.0.1:5432/runstream", shared.dsn)
              .replace("8000", web[0]).replace("8001", web[1]))
    # This test's queue and keys, so that other tests' workers do not take its runs.
    script = script.replace('type: taskiq,', f'type: taskiq, queue_name: "q-{shared.tag}",')
    env = child_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "recipe.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        code = proc.wait(timeout=120)  # bash ends with the curl; its `&` jobs go on
    finally:
        # The recipe's background processes are in the script's process group.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            if sig == signal.SIGTERM:
                time.sleep(1.0)  # the workers' and web processes' graceful stop
        proc.wait(timeout=10)
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert "event: run.completed" in text, text
    assert plan_answer("Hello").split()[-1] in text
