"""The `stdout` sink (runstream-stdout): JSON lines, and pretty output rendered by rich."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from rich.console import Console
from runstream import AsyncPipeline, ConfigError, Event, Runtime
from runstream.testing import make_runtime, memory_config, run_pipeline
from runstream_async_python import AsyncPythonTask
from runstream_stdout import StdoutSink

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


async def answer() -> AsyncIterator[dict[str, Any]]:
    yield {"type": "status", "status": "thinking"}
    for piece in ["Hel", "lo wor", "ld\nsecond ", "line"]:
        yield {"type": "chunk", "text": piece}
    yield {"type": "done", "full_text": "Hello world\nsecond line"}


async def tidy() -> dict[str, Any]:
    return {}


async def boom() -> AsyncIterator[dict[str, Any]]:
    yield {"type": "chunk", "text": "partial answer"}
    raise ValueError("the model went away")


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (polling; gives up after a generous number of tries)."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("the condition never became true")


def runtime_with(**options: Any) -> Runtime:
    return make_runtime(config=memory_config({"type": "stdout", **options}), entry_points=True)


def terminal(color: bool = False) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120,
                      color_system="truecolor" if color else None)
    return console, buf


def sink_of(rt: Runtime) -> StdoutSink:
    sink = rt.sinks[0][1]
    assert isinstance(sink, StdoutSink)
    return sink


CHAT = AsyncPipeline("chat", [AsyncPythonTask(name="llm", function=answer),
                              AsyncPythonTask(name="tidy", function=tidy)])


async def test_jsonl_parses_back_to_the_same_events(capsys: pytest.CaptureFixture[str]) -> None:
    rt = runtime_with(format="jsonl")
    try:
        result = await run_pipeline(CHAT, runtime=rt)
        log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    out = capsys.readouterr().out
    assert out.endswith("\n")
    assert [Event.model_validate_json(line) for line in out.splitlines()] == events
    assert log.warnings == []


async def test_jsonl_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    rt = runtime_with(format="jsonl", stream="stderr")
    try:
        events = (await run_pipeline(CHAT, runtime=rt)).events
    finally:
        await rt.aclose()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert [Event.model_validate_json(line) for line in captured.err.splitlines()] == events


async def test_auto_is_jsonl_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    rt = runtime_with()
    try:
        events = (await run_pipeline(CHAT, runtime=rt)).events
    finally:
        await rt.aclose()
    assert [Event.model_validate_json(line)
            for line in capsys.readouterr().out.splitlines()] == events


async def test_auto_is_pretty_on_a_terminal() -> None:
    console, buf = terminal()
    rt = runtime_with()
    sink_of(rt).use_console(console)
    try:
        await run_pipeline(CHAT, runtime=rt)
    finally:
        await rt.aclose()
    out = buf.getvalue()
    assert "chat started" in out
    assert '"type":' not in out


async def test_pretty_shows_steps_streamed_text_and_a_summary() -> None:
    console, buf = terminal(color=True)
    rt = runtime_with(format="pretty")
    sink_of(rt).use_console(console)
    try:
        result = await run_pipeline(CHAT, runtime=rt)
        log, events = result.run_log, result.events
    finally:
        await rt.aclose()
    out = ANSI.sub("", buf.getvalue())
    lines = out.splitlines()
    assert f"▶ chat started · run {log.run_id}" in lines
    assert "  ▸ llm started" in lines
    assert "    · llm: status status=thinking" in lines
    # The chunks are joined as they arrive, and a newline in the text starts a new line.
    assert "    Hello world" in lines
    assert "    second line" in lines
    assert "    · llm: done full_text=Hello world\\nsecond line" in lines
    assert any(re.fullmatch(r"  ✓ llm completed in \d+ ms", line) for line in lines)
    assert any(re.fullmatch(r"  ✓ tidy completed in \d+ ms", line) for line in lines)
    assert re.fullmatch(r"✓ chat completed · \d+ ms · 2 steps · 6 events", lines[-1])
    assert len([e for e in events if e.type == "step.event"]) == 6
    assert "\x1b[" in buf.getvalue()  # styled with colours on a colour terminal


async def test_pretty_shows_the_error_of_a_failed_run() -> None:
    console, buf = terminal()
    rt = runtime_with(format="pretty")
    sink_of(rt).use_console(console)
    p = AsyncPipeline("chat", [AsyncPythonTask(name="llm", function=answer),
                               AsyncPythonTask(name="flaky", function=boom),
                               AsyncPythonTask(name="tidy", function=tidy)])
    try:
        log = (await run_pipeline(p, runtime=rt)).run_log
    finally:
        await rt.aclose()
    assert log.status == "failed"
    lines = buf.getvalue().splitlines()
    assert "    partial answer" in lines
    assert any(re.fullmatch(r"  ✗ flaky failed after \d+ ms: ValueError: the model went away",
                            line) for line in lines)
    assert re.fullmatch(r"✗ chat failed in step 'flaky' · \d+ ms · 1 of 2 steps completed "
                        r"· 7 events", lines[-2])
    assert lines[-1] == "  error: ValueError: the model went away"


async def test_pretty_shows_a_cancelled_run() -> None:
    started = asyncio.Event()

    async def forever() -> AsyncIterator[dict[str, Any]]:
        yield {"type": "chunk", "text": "waiting"}
        started.set()
        await asyncio.Event().wait()

    console, buf = terminal()
    rt = runtime_with(format="pretty")
    sink_of(rt).use_console(console)
    p = AsyncPipeline("waits", [AsyncPythonTask(name="block", function=forever)])
    try:
        handle = p.stream(config=rt)
        await started.wait()
        await handle.cancel("user pressed stop")
    finally:
        await rt.aclose()
    lines = buf.getvalue().splitlines()
    assert "    waiting" in lines
    assert re.fullmatch(r"■ waits cancelled \(user pressed stop\) · \d+ ms · 0 of 1 step "
                        r"completed · 1 event", lines[-1])


async def test_event_data_is_not_rich_markup() -> None:
    async def tricky() -> AsyncIterator[dict[str, Any]]:
        yield {"type": "chunk", "text": "[bold red]not markup[/] \x1b[2J"}
        yield {"type": "note", "value": "[link=x]y[/link]"}

    console, buf = terminal(color=True)
    rt = runtime_with(format="pretty")
    sink_of(rt).use_console(console)
    try:
        await run_pipeline(AsyncPipeline("p", [AsyncPythonTask(name="s", function=tricky)]),
                           runtime=rt)
    finally:
        await rt.aclose()
    out = ANSI.sub("", buf.getvalue())
    assert "[bold red]not markup[/] \\x1b[2J" in out
    assert "note value=[link=x]y[/link]" in out
    assert "\x1b[2J" not in buf.getvalue()


async def test_concurrent_runs_print_whole_lines_with_their_run_id() -> None:
    gate = asyncio.Barrier(3)

    async def talk(word: str) -> AsyncIterator[dict[str, Any]]:
        await gate.wait()  # every run is active before any text flows
        for i in range(3):
            for ch in f"{word} line {i}\n":
                yield {"type": "chunk", "text": ch}
                await asyncio.sleep(0)

    buf = io.StringIO()
    console = Console(file=buf, width=120)  # not a terminal: no live display
    rt = runtime_with(format="pretty")
    sink_of(rt).use_console(console)
    pipelines = [AsyncPipeline(word, [AsyncPythonTask(name="talk", function=talk)])
                 for word in ("alpha", "beta", "gamma")]
    try:
        results = await asyncio.gather(*(run_pipeline(p, {"word": p.name}, runtime=rt)
                                         for p in pipelines))
    finally:
        await rt.aclose()
    lines = buf.getvalue().splitlines()
    for log, p in zip((r.run_log for r in results), pipelines, strict=True):
        label = log.run_id[-6:]
        mine = [line for line in lines if line.startswith(f"[{label}] ")]
        for i in range(3):
            assert f"[{label}]     {p.name} line {i}" in mine
        assert any(f"{p.name} completed" in line for line in lines if p.name in line)
    text_lines = [line for line in lines if " line " in line]
    assert len(text_lines) == 9
    assert all(re.fullmatch(r"\[\w{6}\]     (alpha|beta|gamma) line \d", line)
               for line in text_lines)


async def test_a_long_run_gets_a_live_progress_row(monkeypatch: pytest.MonkeyPatch) -> None:
    import runstream_stdout._terminal as terminal_module

    monkeypatch.setattr(terminal_module, "LIVE_AFTER", 0.0)  # don't wait a second in tests

    console, buf = terminal()

    async def slow() -> AsyncIterator[dict[str, Any]]:
        await until(lambda: "\x1b[?25l" in buf.getvalue())  # the live display (due at once)
        # has started: rich hid the cursor
        yield {"type": "chunk", "text": "thinking about it"}
        # Until the live row has shown the line in progress.
        await until(lambda: "1 event  thinking about it" in buf.getvalue())
        yield {"type": "chunk", "text": " ... done\n"}

    rt = runtime_with(format="pretty")
    sink_of(rt).use_console(console)
    try:
        slowpoke = AsyncPipeline("slowpoke", [AsyncPythonTask(name="ponder", function=slow)])
        log = (await run_pipeline(slowpoke, runtime=rt)).run_log
    finally:
        await rt.aclose()
    raw = buf.getvalue()
    label = log.run_id[-6:]
    # The progress row: spinner, run, pipeline, step, events, the text line in progress.
    assert re.search(rf"\[{label}\] slowpoke · ponder · \d+ ms · 1 event  thinking about it",
                     raw)
    assert "\x1b[?25l" in raw and "\x1b[?25h" in raw  # rich hid, then restored, the cursor
    plain = ANSI.sub("", raw)
    assert "    thinking about it ... done" in plain.splitlines()
    assert re.search(r"✓ slowpoke completed · \d+ ms · 1 step · 2 events", plain)


async def test_an_unfinished_line_moves_out_of_the_way_of_a_second_run() -> None:
    second_started = asyncio.Event()
    console, buf = terminal()

    async def first() -> AsyncIterator[dict[str, Any]]:
        yield {"type": "chunk", "text": "unfinished"}
        await second_started.wait()
        yield {"type": "chunk", "text": " line\n"}

    async def second() -> AsyncIterator[dict[str, Any]]:
        # This run's arrival on the terminal takes "one"'s unfinished line back (erases it).
        await until(lambda: "unfinished\r\x1b[2K" in buf.getvalue())
        second_started.set()
        yield {"type": "chunk", "text": "other\n"}
        await until(lambda: "unfinished line" in buf.getvalue())  # active till "one" is done

    rt = runtime_with(format="pretty")
    sink_of(rt).use_console(console)
    try:
        handle = AsyncPipeline("one", [AsyncPythonTask(name="s", function=first)]).stream(
            config=rt)
        await until(lambda: "unfinished" in buf.getvalue())
        two = AsyncPipeline("two", [AsyncPythonTask(name="s", function=second)])
        log_b = (await run_pipeline(two, runtime=rt)).run_log
        log_a = await handle.result()
    finally:
        await rt.aclose()
    raw = buf.getvalue()
    # Written where the cursor was while "one" was alone, then erased (rich cursor controls)...
    assert "\n    unfinished\r\x1b[2K" in raw
    # ...and printed whole, with its run id, once the line ended.
    lines = ANSI.sub("", raw).split("\n")
    assert f"[{log_a.run_id[-6:]}]     unfinished line" in lines
    assert f"[{log_b.run_id[-6:]}]     other" in lines


async def test_a_sink_that_is_dropped_leaves_the_display() -> None:
    class Broken(io.StringIO):
        def write(self, s: str) -> int:
            if "boom" in s:
                raise OSError("terminal went away")
            return super().write(s)

    async def emits() -> AsyncIterator[dict[str, Any]]:
        yield {"type": "chunk", "text": "boom"}

    console = Console(file=Broken(), width=80)
    rt = runtime_with(format="pretty")
    sink = sink_of(rt).use_console(console)
    try:
        p = AsyncPipeline("p", [AsyncPythonTask(name="s", function=emits)])
        log = (await run_pipeline(p, runtime=rt)).run_log
        await until(lambda: sink._terminal._runs == [])  # the sink task's done callback ran
    finally:
        await rt.aclose()
    assert log.warnings == ["sink 'stdout' (sinks[0]) failed and was dropped for this run: "
                            "OSError: details in the server log"]


@pytest.mark.parametrize(("options", "expected"), [
    ({"format": "fancy"}, "'format': Input should be 'auto', 'pretty' or 'jsonl' "
                          "(got 'fancy')"),
    ({"stream": "stdlog"}, "'stream': Input should be 'stdout' or 'stderr'"),
    ({"colour": True}, "unknown key 'colour'; allowed keys: format, queue_size, "
                       "send_timeout, stream"),
])
def test_bad_options_are_config_errors(options: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        runtime_with(**options)
    assert str(info.value).startswith("config: sinks[0] (type: stdout): ")
    assert expected in str(info.value)


def test_public_api() -> None:
    import runstream_stdout

    public = {name for name in dir(runstream_stdout) if not name.startswith("_")}
    assert runstream_stdout.__all__ == ["StdoutSink"]
    assert set(runstream_stdout.__all__) == public
    assert runstream_stdout.StdoutSink.__module__ == "runstream_stdout._sink"  # loaded lazily
