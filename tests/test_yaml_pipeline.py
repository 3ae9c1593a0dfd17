"""YAML pipelines: task types by name, functions as module:function strings, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from runstream import PipelineDefinitionError, Runtime, load_pipeline, pipeline_from_dict

GOOD = """
name: hello
steps:
  - name: greet
    type: async-python
    function: examples.hello_stream:greet
    returns: [sentence]
  - name: count
    type: python
    function: tests.test_yaml_pipeline:count_words
    returns: [words]
"""


def count_words(sentence: str) -> int:
    return len(sentence.split())


async def test_yaml_pipeline_runs(tmp_path: Path, runtime: Runtime) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(GOOD)
    p = load_pipeline(f, runtime)
    assert [s.name for s in p.steps] == ["greet", "count"]
    events = [e async for e in p.execute_streaming({"name": "YAML", "delay": 0},
                                                   config=runtime)]
    assert events[-1]["sentence"].startswith("Hello YAML,")
    log = await runtime.store.get((await runtime.store.list_runs(limit=1))[0].run_id)
    assert log.steps["count"].attempts[0].output_parameters == {"words": 10}


@pytest.mark.parametrize(("doc", "message"), [
    ("- a", "must be a mapping with keys name and steps"),
    ("name: x\nsteps: []", "'steps' must be a non-empty list"),
    ("steps: [{name: a, type: python}]", "missing required key 'name'"),
    ("name: x\nstpes: []", "unknown key 'stpes'; allowed keys: description, name, on_failure"),
    ("name: x\nsteps: [{name: a, type: gpt}]",
     "steps[0]: unknown task type 'gpt'; installed task types: async-python"),
    ("name: x\nsteps: [{name: a}]", "steps[0]: missing required key 'type'"),
    ("name: x\nsteps: [{name: a, type: python, function: nowhere.mod:f}]",
     "cannot import module 'nowhere.mod'"),
    ("name: x\nsteps: [{name: a, type: python, function: os:no_such_fn}]",
     "module 'os' has no attribute 'no_such_fn'"),
    ("name: x\nsteps: [{name: a, type: python, function: 'not a path'}]",
     "not a 'module:function' path"),
    ("name: x\nsteps: [{name: a, type: python, function: os:getcwd, colour: red}]",
     "steps[0] (type: python): unknown key 'colour'; allowed keys: done_type, function"),
    ("name: x\nsteps: [{name: 'a.b', type: python, function: os:getcwd}]",
     "steps[0] (type: python): 'name': step name 'a.b' must be"),
    ("name: x\nsteps: [{name: a, type: python, function: os:getcwd},"
     " {name: a, type: python, function: os:getcwd}]", "two steps are named 'a'"),
])
def test_errors(runtime: Runtime, doc: str, message: str) -> None:
    import yaml

    with pytest.raises(PipelineDefinitionError) as info:
        pipeline_from_dict(yaml.safe_load(doc), runtime, "p.yaml")
    assert message in str(info.value)


def test_unreadable_and_invalid_files(tmp_path: Path, runtime: Runtime) -> None:
    with pytest.raises(PipelineDefinitionError, match="cannot read pipeline file"):
        load_pipeline(tmp_path / "missing.yaml", runtime)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [x\n")
    with pytest.raises(PipelineDefinitionError, match="not valid YAML"):
        load_pipeline(bad, runtime)
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo hi']\nsteps: []\n")
    with pytest.raises(PipelineDefinitionError, match="not valid YAML"):
        load_pipeline(evil, runtime)
