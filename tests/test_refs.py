"""Pipelines by reference (``load_pipeline_ref``), what a remote executor's workers load, and
``runstream worker`` without a remote executor."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from runstream import AsyncPipeline, PipelineDefinitionError, load_pipeline, load_pipeline_ref
from runstream._cli import main

MODULE = '''
from runstream import AsyncPipeline, Pipeline
from runstream_async_python import AsyncPythonTask


async def hello(name: str = "you"):
    yield {"type": "chunk", "text": f"hello {name}"}


def build() -> AsyncPipeline:
    return AsyncPipeline("hello", [AsyncPythonTask(name="hi", function=hello)])


SYNC = Pipeline("sync-hello", [AsyncPythonTask(name="hi", function=hello)])
NOT_A_PIPELINE = 42
'''

YAML = '''
name: from-yaml
steps:
  - name: hi
    type: async-python
    function: refmod:hello
'''


@pytest.fixture
def refmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "refmod.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "refmod", raising=False)
    return tmp_path


def test_a_function_reference_gives_its_pipeline_with_the_ref_set(refmod: Path) -> None:
    pipeline = load_pipeline_ref("refmod:build")
    assert isinstance(pipeline, AsyncPipeline) and pipeline.name == "hello"
    assert pipeline.ref == "refmod:build"
    synced = load_pipeline_ref("refmod:SYNC")
    assert synced.name == "sync-hello" and synced.ref == "refmod:SYNC"


def test_a_yaml_pipeline_is_referenced_by_its_absolute_path(refmod: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    (refmod / "p.yaml").write_text(YAML)
    monkeypatch.chdir(refmod)
    assert load_pipeline("p.yaml").ref == str(refmod / "p.yaml")
    assert load_pipeline_ref("p.yaml").ref == str(refmod / "p.yaml")


def test_bad_references_say_what_is_wrong(refmod: Path) -> None:
    with pytest.raises(PipelineDefinitionError, match="not a pipeline"):
        load_pipeline_ref("refmod:NOT_A_PIPELINE")
    with pytest.raises(PipelineDefinitionError, match="has no attribute 'nope'"):
        load_pipeline_ref("refmod:nope")
    with pytest.raises(PipelineDefinitionError, match="cannot import module"):
        load_pipeline_ref("no_such_module_here:build")


def test_a_pipeline_built_in_code_has_no_ref() -> None:
    assert AsyncPipeline("x", [_task()]).ref is None
    assert AsyncPipeline("x", [_task()], ref="pkg.mod:x").ref == "pkg.mod:x"


def _task() -> object:
    from runstream_async_python import AsyncPythonTask

    async def gen():  # type: ignore[no-untyped-def]
        yield {"type": "x"}

    return AsyncPythonTask(name="t", function=gen)


def test_runstream_worker_needs_a_remote_executor(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "runstream.yaml"
    config.write_text("run_log_store: {type: memory}\n")
    code = main(["worker", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert "runstream worker needs a remote executor" in err and "taskiq" in err
    assert "Traceback" not in err
