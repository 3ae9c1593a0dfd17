"""Sinks wired through the config: several at once, each on its own queue, failures isolated,
config errors that name the entry, and `runstream run` using the configured sinks."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    Config,
    ConfigError,
    Event,
    RunLog,
    Runtime,
    Sink,
    UnknownNameError,
    hookimpl,
)
from runstream._cli import main
from runstream.testing import memory_config, run_pipeline
from runstream_async_python import AsyncPythonTask
from runstream_file import read_events

pytestmark = pytest.mark.usefixtures("in_tmp_cwd")


async def chatter(word: str) -> AsyncIterator[dict[str, Any]]:
    for i in range(4):
        yield {"type": "chunk", "text": f"{word}-{i} "}
        await asyncio.sleep(0)
    yield {"type": "done", "full_text": word}


PIPELINE = AsyncPipeline("chat", [AsyncPythonTask(name="talk", function=chatter)])


def config(*sinks: dict[str, Any]) -> Config:
    return memory_config(*sinks)


async def test_two_sinks_receive_every_event_of_50_concurrent_runs(
        capsys: pytest.CaptureFixture[str]) -> None:
    rt = Runtime(config({"type": "file", "path": "runs/{run_id}.jsonl"},
                        {"type": "stdout", "format": "jsonl"}))
    try:
        results = await asyncio.gather(*(run_pipeline(PIPELINE, {"word": f"w{i}"}, runtime=rt)
                                         for i in range(50)))
    finally:
        await rt.aclose()
    printed = [Event.model_validate_json(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == sum(len(r.events) for r in results)
    assert len(list(Path("runs").iterdir())) == 50
    for log, events in ((r.run_log, r.events) for r in results):
        assert log.status == "completed" and log.warnings == []
        assert list(read_events(Path("runs") / f"{log.run_id}.jsonl")) == events
        assert [e for e in printed if e.run_id == log.run_id] == events
        word = log.parameters["word"]
        assert all(word in json.dumps(e.data) for e in events if e.type == "step.event")


class BrokenSink(Sink):
    """Raises on the `fail_at`-th event (0: in open)."""

    fail_at: int = 3
    sent: int = 0

    async def open(self, run: RunLog) -> None:
        if self.fail_at == 0:
            raise RuntimeError("cannot open")

    async def send(self, event: Event) -> None:
        self.sent += 1
        if self.sent >= self.fail_at:
            raise RuntimeError(f"broke at event {self.sent}")


class StuckSink(Sink):
    """Never finishes sending."""

    async def send(self, event: Event) -> None:
        await asyncio.Event().wait()


class SinksPlugin:
    @hookimpl
    def register_sinks(self, register: Any) -> None:
        register("broken", BrokenSink)
        register("stuck", StuckSink)


@pytest.mark.parametrize(("sink", "reason"), [
    ({"type": "broken", "fail_at": 3}, "RuntimeError: broke at event 3"),
    ({"type": "broken", "fail_at": 0}, "RuntimeError: cannot open"),
    ({"type": "stuck", "queue_size": 1, "send_timeout": 0.05}, "stayed full"),
])
async def test_a_failing_sink_is_reported_once_and_the_others_carry_on(
        sink: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture) -> None:
    rt = Runtime(config({"type": "file", "path": "a/{run_id}.jsonl"}, sink,
                        {"type": "file", "path": "b/{run_id}.jsonl"}),
                 plugins=[SinksPlugin()])
    try:
        with caplog.at_level(logging.WARNING, logger="runstream.sinks"):
            result = await run_pipeline(PIPELINE, {"word": "x"}, runtime=rt)
            log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    assert log.status == "completed"
    assert events[-1].type == "run.completed"
    assert len(log.warnings) == 1
    assert log.warnings[0].startswith(f"sink '{sink['type']}' (sinks[1]) failed and was "
                                      "dropped for this run: ")
    # The run log (clients may read it) has the error's type; the server log has the reason.
    assert reason.split(":")[0] in log.warnings[0]
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith(f"run {log.run_id}: sink '{sink['type']}'")
    assert reason in caplog.records[0].getMessage()
    for folder in ("a", "b"):
        assert list(read_events(Path(folder) / f"{log.run_id}.jsonl")) == events


async def test_each_run_gets_its_own_copy_of_a_sink() -> None:
    rt = Runtime(config({"type": "broken", "fail_at": 1000}), plugins=[SinksPlugin()])
    try:
        await asyncio.gather(*(run_pipeline(PIPELINE, {"word": "x"}, runtime=rt) for _ in range(3)))
    finally:
        await rt.aclose()
    configured = rt.sinks[0][1]
    assert isinstance(configured, BrokenSink) and configured.sent == 0


def test_unknown_sink_type_names_the_entry_and_the_installed_sinks() -> None:
    with pytest.raises(UnknownNameError) as info:
        Runtime(config({"type": "stdout"}, {"type": "fil"}))
    message = str(info.value)
    assert message.startswith("config: sinks[1]: unknown sink 'fil'; installed sinks: ")
    installed = message.rsplit(": ", 1)[1].split(", ")
    assert {"file", "stdout"} <= set(installed)
    assert installed == sorted(installed)


def test_config_file_errors_name_the_file_and_the_entry() -> None:
    Path("runstream.yaml").write_text(
        "run_log_store: {type: memory}\n"
        "sinks:\n"
        "  - {type: stdout, format: pretty}\n"
        "  - {type: file, path: '.runstream/events/{run_id}.jsonl', flush_evry: 10}\n")
    with pytest.raises(ConfigError) as info:
        Runtime()
    assert str(info.value) == (
        "runstream.yaml: sinks[1] (type: file): unknown key 'flush_evry'; allowed keys: "
        "base_dir, flush_every, flush_interval, path, queue_size, send_timeout")
    Path("runstream.yaml").write_text("sinks:\n  - {format: pretty}\n")
    with pytest.raises(ConfigError, match=r"runstream.yaml: missing required key 'sinks\[0\]"
                                          r"\.type'"):
        Runtime()


async def test_sinks_from_a_config_file() -> None:
    Path("runstream.yaml").write_text(
        "run_log_store: {type: memory}\n"
        "sinks:\n"
        "  - {type: file, path: 'one/{run_id}.jsonl'}\n"
        "  - {type: file, path: 'two/{pipeline}-{run_id}.jsonl', flush_every: 5}\n")
    rt = Runtime("runstream.yaml")
    try:
        result = await run_pipeline(PIPELINE, {"word": "y"}, runtime=rt)
        log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    assert list(read_events(f"one/{log.run_id}.jsonl")) == events
    assert list(read_events(f"two/chat-{log.run_id}.jsonl")) == events


PIPELINE_YAML = """\
name: hello
steps:
  - name: llm
    type: mock-llm
    thinking_delay: 0
    generating_delay: 0
    tokens_per_second: 0
    response: "Hello there world"
"""


def _cli_run(config_text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    Path("pipeline.yaml").write_text(PIPELINE_YAML)
    Path("runstream.yaml").write_text("run_log_store: {type: memory}\n" + config_text)
    code = main(["run", "pipeline.yaml", "--config", "runstream.yaml", "-p", "prompt=hi"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_run_prints_raw_events_without_a_stdout_sink(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli_run("sinks: [{type: file, path: 'ev/{run_id}.jsonl'}]\n", capsys)
    assert code == 0
    printed = [json.loads(line) for line in out.splitlines()]
    assert {"type": "chunk", "text": "Hello "} in printed
    assert "run_id" not in printed[0]  # the tasks' dicts, not envelopes
    run_id = err.split()[1]
    from_file = list(read_events(f"ev/{run_id}.jsonl"))
    assert [e.data for e in from_file if e.type == "step.event"] == printed


def test_cli_run_leaves_printing_to_a_configured_stdout_sink(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli_run("sinks: [{type: stdout}, {type: file, path: 'ev/{run_id}.jsonl'}]\n",
                              capsys)
    assert code == 0
    run_id = err.split()[1]
    # stdout is not a terminal here, so the sink prints JSON envelopes, and nothing else does.
    printed = [Event.model_validate_json(line) for line in out.splitlines()]
    assert printed == list(read_events(f"ev/{run_id}.jsonl"))
    assert printed[-1].type == "run.completed"
