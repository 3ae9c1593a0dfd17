"""Pins for the core's hot-path shortcuts (runstream._hotpath): each fails if the library
behaviour it relies on changes, before the shortcut could corrupt anything."""

from __future__ import annotations

import os

import pytest
from pydantic import BaseModel
from runstream import Event, StepAttempt
from runstream._hotpath import new_model, prefixed_environ, set_fields


def test_new_model_is_the_model_pydantic_builds() -> None:
    values = {"v": 1, "run_id": "r1", "seq": 3, "ts": 1.5, "type": "step.event", "step": "a",
              "data": {"text": "hi", "n": [1, 2]}}
    fast = new_model(Event, dict(values), set(values))
    slow = Event.model_validate(values)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_copy(update={"seq": 4}).seq == 4
    assert Event.from_record("r1", (3, 1.5, "step.event", "a", values["data"])) == slow
    # The state pydantic keeps per instance is exactly what new_model sets.
    assert set(vars(slow)) == set(values)
    assert slow.__pydantic_extra__ is None and slow.__pydantic_private__ is None


def test_set_fields_is_setattr_for_a_model_that_does_not_validate_assignment() -> None:
    assert not StepAttempt.model_config.get("validate_assignment", False)
    a = StepAttempt(n=1)
    b = a.model_copy(deep=True)
    a.output_parameters = {"x": 1}
    a.status = "completed"
    set_fields(b, output_parameters={"x": 1}, status="completed")
    assert a.model_dump() == b.model_dump()
    assert a.model_fields_set == b.model_fields_set


class _Validating(BaseModel, validate_assignment=True):
    n: int = 0


def test_set_fields_would_skip_validation_so_it_is_not_for_validating_models() -> None:
    # The shortcut is only for models without validate_assignment: show why.
    model = _Validating()
    with pytest.raises(ValueError):
        model.n = "x"  # type: ignore[assignment]
    set_fields(model, n="x")
    assert model.n == "x"  # type: ignore[comparison-overlap]


def test_prefixed_environ_matches_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNSTREAM_PRM_alpha", "1")
    monkeypatch.setenv("RUNSTREAM_PRM_beta", "caf\u00e9")
    monkeypatch.setenv("RUNSTREAM_PRM_", "no name: not a parameter")
    expected = sorted((k, v) for k, v in os.environ.items()
                      if k.startswith("RUNSTREAM_PRM_") and len(k) > len("RUNSTREAM_PRM_"))
    assert sorted(prefixed_environ("RUNSTREAM_PRM_")) == expected
    assert ("RUNSTREAM_PRM_beta", "caf\u00e9") in expected
    # os.environ keeps its raw bytes mapping, in the form the shortcut reads.
    raw = os.environ._data  # type: ignore[attr-defined]
    assert raw[b"RUNSTREAM_PRM_alpha"] == b"1"
