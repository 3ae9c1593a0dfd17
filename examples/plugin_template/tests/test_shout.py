"""The template's own tests, using the fixtures of runstream's pytest plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runstream import AsyncPipeline
from runstream_shout import ShoutTask, TranscriptSink, _plugin as plugin


async def test_shout_streams_words(runstream_runtime: Any, collecting_sink: Any,
                                   run_pipeline: Any) -> None:
    runtime = runstream_runtime(plugin, sinks=[collecting_sink])
    pipeline = AsyncPipeline("s", [ShoutTask(name="shout", returns=["shouted"])])
    result = await run_pipeline(pipeline, {"text": "hi there"}, runtime=runtime)
    assert result.data == [{"type": "chunk", "text": "HI "}, {"type": "chunk", "text": "THERE "},
                           {"type": "done", "shouted": "HI THERE"}]
    assert len(collecting_sink.events) == len(result.events)


async def test_transcript_sink_writes_a_file(runstream_runtime: Any, run_pipeline: Any,
                                             tmp_path: Path) -> None:
    runtime = runstream_runtime(plugin, sinks=[TranscriptSink(directory=str(tmp_path))])
    pipeline = AsyncPipeline("s", [ShoutTask(name="shout")])
    result = await run_pipeline(pipeline, {"text": "quiet please"}, runtime=runtime)
    text = (tmp_path / f"{result.run_log.run_id}.txt").read_text()
    assert text == "QUIET PLEASE\n[completed]\n"


def test_plugin_registers_by_name(runstream_runtime: Any) -> None:
    runtime = runstream_runtime(plugin)
    assert "shout" in runtime.plugins.task_types
    assert "transcript" in runtime.plugins.sinks
