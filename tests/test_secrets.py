"""Secret parameters: tasks receive them, runstream never records or emits them.

The checks read what runstream wrote raw (every byte under the run log store's and the file
sink's directories) and everything it emitted (events, errors, log records).
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    ComponentConfig,
    Config,
    Map,
    ParametersConfig,
    Retry,
    RunFailedError,
    Runtime,
    Secret,
    hookimpl,
)
from runstream_async_python import AsyncPythonTask

SECRET = "sk-live-7f3a9c21d4e8b6a0"
LISTED = "hunter2-correct-horse"
DERIVED = "bearer-from-step-9d1c"

received: dict[str, Any] = {}


async def use(api_key: str, password: str, prompt: str) -> Any:
    received.update(api_key=api_key, password=password)
    yield {"type": "chunk", "text": f"{prompt}: key of {len(api_key)} characters"}
    yield {"type": "done", "token": Secret(DERIVED)}


async def each(item: str, token: str) -> dict[str, Any]:
    received.setdefault("items", []).append(item)
    received["token"] = token
    return {"ok": True}


async def explode(api_key: str, token: str) -> None:
    raise ValueError(f"the server refused key {api_key} (token {token})")


class LeakyHook:
    """A plugin hook that fails with the secret in its message (reported as a warning)."""

    @hookimpl
    def after_run(self, run_log: Any) -> None:
        raise RuntimeError(f"could not report with {SECRET}")


def pipeline() -> AsyncPipeline:
    return AsyncPipeline("secretive", [
        AsyncPythonTask(name="use", function=use, returns=["token"]),
        Map(name="fan", over="keys", iterate_as="item", branch=[
            AsyncPythonTask(name="each", function=each)]),
        AsyncPythonTask(name="explode", function=explode,
                        retry=Retry(max_attempts=2, delay=0)),
    ])


def raw_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


@pytest.mark.parametrize("store", ["sqlite", "file-system"])
async def test_secrets_reach_the_task_and_no_stored_or_emitted_byte(
        tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    received.clear()
    monkeypatch.setenv("RUNSTREAM_PRM_password", LISTED)
    path = tmp_path / "store" / ("runs.db" if store == "sqlite" else "runs")
    config = Config(
        run_log_store=ComponentConfig(type=store, path=str(path)),
        sinks=[ComponentConfig(type="file", path=str(tmp_path / "events" / "{run_id}.jsonl"))],
        parameters=ParametersConfig(environment=["password"], secret=["password"]))
    runtime = Runtime(config, plugins=[LeakyHook()])
    caplog.set_level(logging.DEBUG)
    events: list[str] = []
    try:
        handle = pipeline().stream(
            {"prompt": "Hi", "api_key": Secret(SECRET), "keys": Secret([SECRET, "public"])},
            config=runtime)
        async for event in handle:
            events.append(event.model_dump_json())
        log = await handle.result()
        with pytest.raises(RunFailedError) as failed:
            raise RunFailedError(log)
    finally:
        await runtime.aclose()

    # The tasks got the real values, unwrapped.
    received["items"].sort()
    assert received == {"api_key": SECRET, "password": LISTED, "token": DERIVED,
                        "items": ["public", SECRET]}
    assert log.status == "failed"
    assert log.parameters["api_key"] == log.parameters["password"] == "**********"
    assert log.steps["use"].attempts[0].output_parameters == {"token": "**********"}
    assert log.error is not None
    assert log.error.message == "the server refused key ********** (token **********)"
    assert len(log.steps["explode"].attempts) == 2  # step.retrying carried the message too
    # The hook's message reaches the server log only, and redacted there.
    assert any("hook" in w and "details in the server log" in w for w in log.warnings)
    assert "could not report with **********" in caplog.text

    emitted = "\n".join([*events, str(failed.value), caplog.text, log.model_dump_json()])
    stored = raw_bytes(tmp_path / "store") + raw_bytes(tmp_path / "events")
    assert b"step.retrying" in stored and b"run.failed" in stored  # we read the right files
    for value in (SECRET, LISTED, DERIVED):
        assert value not in emitted
        assert value.encode() not in stored


def test_the_wrapper_masks_itself() -> None:
    secret = Secret(SECRET)
    shown = [repr(secret), str(secret), f"{secret}", json.dumps({"k": str(secret)})]
    assert all(SECRET not in text for text in shown)
    assert secret.get_secret_value() == SECRET
    assert Secret(secret).get_secret_value() == SECRET
    assert copy.deepcopy(secret) == secret == pickle.loads(pickle.dumps(secret))
    assert secret != SECRET and len({secret, Secret(SECRET)}) == 1


async def test_short_values_are_masked_in_records_but_not_redacted_from_text(
        runtime: Runtime) -> None:
    async def echo(pin: str) -> str:
        return pin

    p = AsyncPipeline("pin", [AsyncPythonTask(name="echo", function=echo, returns=["seen"])])
    log = await p.execute({"pin": Secret("123")}, config=runtime)
    assert log.parameters == {"pin": "**********"}
    assert log.steps["echo"].attempts[0].input_parameters == {"pin": "**********"}
    # Returned under another name, unwrapped: that is the task's choice, and "123" is too short
    # to be told from other text; docs/security.md says so.
    assert log.steps["echo"].attempts[0].output_parameters == {"seen": "123"}
