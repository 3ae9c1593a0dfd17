"""The `file` sink (runstream-file): JSON lines per run, path confinement, batching, failures,
and reading event files back."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from runstream import (
    AsyncPipeline,
    ConfigError,
    Event,
    RunLog,
    Runtime,
)
from runstream.testing import make_runtime, memory_config, run_pipeline
from runstream_async_python import AsyncPythonTask
from runstream_file import DEFAULT_PATH, EventPathError, FileSink, PathTemplate, read_events

pytestmark = pytest.mark.usefixtures("runstream_cwd")


async def words(n: int = 5) -> AsyncIterator[dict[str, Any]]:
    for i in range(n):
        yield {"type": "chunk", "text": f"w{i} "}
    yield {"type": "done", "full_text": "..."}


def pipeline(name: str = "demo", fn: Any = words) -> AsyncPipeline:
    return AsyncPipeline(name, [AsyncPythonTask(name="gen", function=fn),
                                AsyncPythonTask(name="again", function=words)])


def runtime_with(*sinks: dict[str, Any]) -> Runtime:
    return make_runtime(config=memory_config(*sinks), entry_points=True)


async def test_file_holds_the_runs_events_in_order() -> None:
    rt = runtime_with({"type": "file"})
    try:
        result = await run_pipeline(pipeline(), runtime=rt)
        log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    path = Path(".runstream/events") / f"{log.run_id}.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    assert all(line.endswith(b"\n") for line in lines)
    assert [json.loads(line) for line in lines] == [e.model_dump(mode="json") for e in events]
    assert list(read_events(path)) == events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "run.completed"
    assert log.warnings == []


async def test_placeholders_pipeline_date_and_params() -> None:
    rt = runtime_with({"type": "file",
                       "path": "out/{pipeline}/{date}/{params.user}-{run_id}.jsonl"})
    try:
        result = await run_pipeline(pipeline("chat"), {"user": "ann", "n": 2}, runtime=rt)
        log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    date = log.started.strftime("%Y-%m-%d")
    path = Path("out/chat") / date / f"ann-{log.run_id}.jsonl"
    assert list(read_events(path)) == events
    assert log.warnings == []


async def test_runs_sharing_one_file_keep_whole_lines() -> None:
    rt = runtime_with({"type": "file", "path": "events/{date}.jsonl"})
    try:
        results = await asyncio.gather(*(run_pipeline(pipeline(), runtime=rt) for _ in range(20)))
    finally:
        await rt.aclose()
    (path,) = Path("events").iterdir()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    everything = [Event.model_validate_json(line) for line in lines[:-1]]
    assert len(everything) == sum(len(r.events) for r in results)
    for log, events in ((r.run_log, r.events) for r in results):
        assert list(read_events(path, run_id=log.run_id)) == events


async def test_batched_events_are_written_when_the_run_ends() -> None:
    seen: list[int] = []

    async def probe() -> AsyncIterator[dict[str, Any]]:
        from runstream import current_task_context

        run_id = current_task_context().run_id
        for i in range(5):
            yield {"type": "chunk", "text": str(i)}
        path = Path(".runstream/events") / f"{run_id}.jsonl"
        seen.append(len(path.read_bytes().splitlines()) if path.exists() else 0)

    rt = runtime_with({"type": "file", "flush_every": 1000})
    try:
        result = await run_pipeline(pipeline(fn=probe), runtime=rt)
        log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    assert seen == [0]  # nothing written while fewer than 1000 events were buffered
    assert list(read_events(Path(".runstream/events") / f"{log.run_id}.jsonl")) == events


async def test_flush_every_writes_whole_batches() -> None:
    rt = runtime_with({"type": "file", "flush_every": 3})
    try:
        result = await run_pipeline(pipeline(), runtime=rt)
        log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    assert list(read_events(Path(".runstream/events") / f"{log.run_id}.jsonl")) == events


async def test_flush_interval_writes_a_quiet_runs_buffer() -> None:
    async def slow() -> AsyncIterator[dict[str, Any]]:
        from runstream import current_task_context

        path = Path("ev") / f"{current_task_context().run_id}.jsonl"
        yield {"type": "chunk", "text": "first"}
        # Wait (without a deadline in the assertion) for the timer to write the buffer.
        for _ in range(500):
            if path.exists() and b'"first"' in path.read_bytes():
                yield {"type": "seen"}
                return
            await asyncio.sleep(0.01)
        yield {"type": "never-flushed"}

    rt = runtime_with({"type": "file", "path": "ev/{run_id}.jsonl", "flush_every": 1000,
                       "flush_interval": 0.02})
    try:
        result = await run_pipeline(pipeline(fn=slow), runtime=rt)
        log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    assert {"type": "seen"} in [e.data for e in events]
    assert list(read_events(Path("ev") / f"{log.run_id}.jsonl")) == events


@pytest.mark.parametrize(("template", "name", "params"), [
    ("{pipeline}.jsonl", "../escape", {}),
    ("{pipeline}.jsonl", "..", {}),
    ("logs/{pipeline}/{run_id}.jsonl", "/etc/passwd", {}),
    ("logs/{pipeline}/{run_id}.jsonl", "a\\..\\..\\b", {}),
    ("logs/{params.user}/{run_id}.jsonl", "demo", {"user": "../../outside"}),
    ("logs/{params.user}/{run_id}.jsonl", "demo", {"user": "/tmp/abs"}),
    ("logs/{params.user}/{run_id}.jsonl", "demo", {"user": ""}),
    ("logs/{params.user}/{run_id}.jsonl", "demo", {"user": {"not": "a name"}}),
    ("logs/{params.user}/{run_id}.jsonl", "demo", {}),
])
async def test_unsafe_values_are_refused_and_the_run_goes_on(
        template: str, name: str, params: dict[str, Any], runstream_cwd: Path) -> None:
    before = sorted(runstream_cwd.parent.iterdir())
    rt = runtime_with({"type": "file", "path": template})
    try:
        result = await run_pipeline(pipeline(name), params, runtime=rt)
        log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    assert log.status == "completed"
    assert events[-1].type == "run.completed"
    assert len(log.warnings) == 1
    assert "sink 'file' (sinks[0]) failed" in log.warnings[0]
    assert "EventPathError" in log.warnings[0]
    assert sorted(runstream_cwd.parent.iterdir()) == before  # nothing written next to the cwd
    assert not list(runstream_cwd.rglob("*.jsonl"))


async def test_a_symlink_out_of_the_base_directory_is_refused(runstream_cwd: Path,
                                                              tmp_path_factory: Any) -> None:
    outside = tmp_path_factory.mktemp("outside")
    Path("logs").mkdir()
    Path("logs/link").symlink_to(outside)
    rt = runtime_with({"type": "file", "path": "logs/{pipeline}/{run_id}.jsonl"})
    try:
        log = (await run_pipeline(pipeline("link"), runtime=rt)).run_log
    finally:
        await rt.aclose()
    assert log.status == "completed"
    # The run log (clients may read it) names the error type; the path stays in the server log.
    assert log.warnings == ["sink 'file' (sinks[0]) failed and was dropped for this run: "
                            "EventPathError: details in the server log"]
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(("options", "expected"), [
    ({"path": "../outside/{run_id}.jsonl"}, "leads outside its base directory '.'"),
    ({"path": ".runstream/{run_id}/../../../x.jsonl"},
     "leads outside its base directory '.runstream'"),
    ({"path": "a/../b/{run_id}.jsonl"}, "leads outside its base directory 'a'"),
    ({"path": "other/{run_id}.jsonl", "base_dir": "logs"}, "leads outside base_dir 'logs'"),
    ({"path": "/tmp/{run_id}.jsonl", "base_dir": "."}, "leads outside base_dir '.'"),
    ({"path": "events/{user}.jsonl"},
     "unknown placeholder '{user}'; allowed: {run_id}, {pipeline}, {date} and {params.NAME}"),
    ({"path": "events/{run_id!r}.jsonl"}, "placeholders take no format spec"),
    ({"path": "events/{date:%Y}.jsonl"}, "placeholders take no format spec"),
    ({"path": "events/{run_id.jsonl"}, "path template 'events/{run_id.jsonl'"),
    ({"path": "events/"}, "must name a file"),
    ({"flush_every": 0}, "'flush_every': Input should be greater than or equal to 1"),
    ({"flush_interval": -1}, "'flush_interval': Input should be greater than 0"),
    ({"pth": "x.jsonl"}, "unknown key 'pth'; allowed keys: base_dir, flush_every, "
                         "flush_interval, path, queue_size, send_timeout"),
])
async def test_bad_templates_and_options_are_config_errors(options: dict[str, Any],
                                                           expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        runtime_with({"type": "stdout"}, {"type": "file", **options})
    message = str(info.value)
    assert message.startswith("config: sinks[1] (type: file): ")
    assert expected in message


def test_base_directory_rule() -> None:
    assert PathTemplate(DEFAULT_PATH).base_dir == ".runstream/events"
    assert PathTemplate("{run_id}.jsonl").base_dir == "."
    assert PathTemplate("logs/run-{run_id}/events.jsonl").base_dir == "logs"
    assert PathTemplate("/var/log/rs/{pipeline}/{run_id}.jsonl").base_dir == "/var/log/rs"
    assert PathTemplate("all.jsonl").base_dir == "."
    assert PathTemplate("/srv/events/{run_id}.jsonl", "/srv").base_dir == "/srv"


def test_date_is_the_runs_utc_start_date() -> None:
    from datetime import UTC, datetime

    log = RunLog(run_id="r1", pipeline="p",
                 started=datetime(2024, 12, 31, 23, 30, tzinfo=UTC))
    path = PathTemplate("ev/{date}/{pipeline}-{run_id}.jsonl").path_for(log)
    assert path == Path.cwd() / "ev/2024-12-31/p-r1.jsonl"
    with pytest.raises(EventPathError, match="not a plain file name"):
        PathTemplate("ev/{pipeline}.jsonl").path_for(RunLog(run_id="r1", pipeline="a/b"))


def _failing_write(monkeypatch: pytest.MonkeyPatch, after: int) -> list[int]:
    """Make os.write fail with ENOSPC for event lines once `after` writes went through: the
    failing call first writes half of its bytes, like a disk that fills up mid-line."""
    real_write = os.write
    calls: list[int] = []
    event_fds: set[int] = set()

    def write(fd: int, data: Any) -> int:
        if bytes(data[:7]).startswith((b'{"v":', b'\n{"v":')):
            event_fds.add(fd)
        if fd not in event_fds:
            return real_write(fd, data)
        calls.append(len(data))
        if len(calls) <= after:
            return real_write(fd, data)
        if len(calls) == after + 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)
    return calls


async def test_a_full_disk_is_reported_and_leaves_no_half_line() -> None:
    rt = runtime_with({"type": "file"})
    try:
        with pytest.MonkeyPatch.context() as mp:
            calls = _failing_write(mp, after=3)
            result = await run_pipeline(pipeline(), runtime=rt)
            log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    assert len(calls) == 5  # 3 good writes, a short write, the failing rest; then dropped
    assert log.status == "completed" and events[-1].type == "run.completed"
    assert len(log.warnings) == 1
    assert "sink 'file' (sinks[0]) failed" in log.warnings[0]
    assert "OSError: details in the server log" in log.warnings[0]
    data = (Path(".runstream/events") / f"{log.run_id}.jsonl").read_bytes()
    assert data.endswith(b"\n")
    assert [Event.model_validate_json(line) for line in data.splitlines()] == events[:3]


async def test_a_failing_batch_write_is_rolled_back_whole() -> None:
    rt = runtime_with({"type": "file", "flush_every": 4})
    try:
        with pytest.MonkeyPatch.context() as mp:
            _failing_write(mp, after=1)
            result = await run_pipeline(pipeline(), runtime=rt)
            log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    assert len(log.warnings) == 1 and "ENOSPC" not in log.warnings[0]
    data = (Path(".runstream/events") / f"{log.run_id}.jsonl").read_bytes()
    assert [Event.model_validate_json(line) for line in data.splitlines()] == events[:4]


def _event(seq: int, run_id: str = "r1") -> Event:
    return Event(run_id=run_id, seq=seq, ts=1.0, type="step.event", step="s",
                 data={"type": "chunk", "text": f"t{seq}"})


def test_reader_skips_a_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    full = b"".join(_event(i).model_dump_json().encode() + b"\n" for i in (1, 2))
    path.write_bytes(full + _event(3).model_dump_json().encode()[:20])
    assert [e.seq for e in read_events(path)] == [1, 2]


def test_reader_skips_damaged_lines_and_filters_by_run(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(_event(1).model_dump_json().encode() + b"\n"
                     + b'{"v":1,"run_id"\n\n'
                     + _event(1, "r2").model_dump_json().encode() + b"\n"
                     + _event(2).model_dump_json().encode() + b"\n")
    assert [e.seq for e in read_events(path, run_id="r1")] == [1, 2]
    assert "e.jsonl:2: skipped a line that is not an event" in caplog.text


async def test_appending_after_a_crashed_writer_starts_a_new_line() -> None:
    events_dir = Path(".runstream/events")
    events_dir.mkdir(parents=True)
    log = RunLog(run_id="r-crashed", pipeline="demo")
    path = events_dir / "r-crashed.jsonl"
    path.write_bytes(_event(1, "r-crashed").model_dump_json().encode() + b"\n"
                     + b'{"v":1,"run_id":"r-cr')
    sink = FileSink()
    await sink.open(log)
    await sink.send(_event(2, "r-crashed"))
    await sink.close(log, "completed")
    assert [e.seq for e in read_events(path)] == [1, 2]


def test_read_run_events_finds_files_through_the_template(tmp_path: Path) -> None:
    sink = FileSink(path="logs/{pipeline}/{run_id}.jsonl")
    folder = Path("logs/chat")
    folder.mkdir(parents=True)
    (folder / "r1.jsonl").write_bytes(_event(1).model_dump_json().encode() + b"\n")
    assert [e.seq for e in sink.read_run_events("r1")] == [1]
    from runstream import RunNotFoundError

    with pytest.raises(RunNotFoundError, match="no event file for run r2"):
        sink.read_run_events("r2")


def test_public_api() -> None:
    import runstream_file

    public = {name for name in vars(runstream_file) if not name.startswith("_")}
    # Sorted like the core's: CONSTANTS, then Classes, then functions.
    assert runstream_file.__all__ == sorted(
        runstream_file.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert set(runstream_file.__all__) == public
