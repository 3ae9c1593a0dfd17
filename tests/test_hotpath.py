"""Pins for the core's hot-path shortcuts (runstream._hotpath): each fails if the library
behaviour it relies on changes, before the shortcut could corrupt anything."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, PrivateAttr
from pydantic.fields import ModelPrivateAttr
from runstream import Event, EventLog, Executor, RunLogStore, Sink, StepAttempt, Task
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


@pytest.mark.parametrize("base", [EventLog, Executor, Sink, RunLogStore, Task])
def test_private_attributes_of_components_read_as_pydantic_reads_them(
        base: type[BaseModel], monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin component's private attributes read the same with the shortcut (a descriptor
    on the class) as through pydantic's ``__getattr__``, which the shortcut skips."""

    class Component(base):  # type: ignore[valid-type,misc]
        label: ClassVar[str] = "c"
        _given: list[int] = PrivateAttr(default_factory=list)
        _plain: int | None = PrivateAttr(default=None)
        _unset: str = PrivateAttr()

    class Sub(Component):
        _plain: int | None = PrivateAttr(default=7)
        _more: str = PrivateAttr(default="more")

    fields = {"name": "t"} if base is Task else {}
    calls: list[str] = []
    pydantic_getattr = BaseModel.__getattr__  # type: ignore[attr-defined]

    def counting(self: BaseModel, item: str) -> Any:
        calls.append(item)
        return pydantic_getattr(self, item)

    monkeypatch.setattr(BaseModel, "__getattr__", counting)
    c, s = Component(**fields), Sub(**fields)
    assert (c._given, c._plain, s._plain, s._more) == ([], None, 7, "more")
    c._given.append(1)
    c._plain = 3
    assert (c._given, c._plain, c.__pydantic_private__["_plain"]) == ([1], 3, 3)
    copy = c.model_copy()
    assert (copy._given, copy._plain) == ([1], 3)
    assert calls == []  # no read went through pydantic's __getattr__
    # Not set and no default: pydantic's own error, as before.
    with pytest.raises(AttributeError, match="_unset"):
        c._unset  # noqa: B018
    assert calls == ["_unset"]
    c._unset = "now"
    assert c._unset == "now"
    # On the class: what pydantic gives there.
    assert isinstance(Component._plain, ModelPrivateAttr) and Sub._plain.default == 7


def answer(model: BaseModel) -> str:
    return f"from a function default, bound to a {type(model).__name__}"


@pytest.mark.parametrize("base", [Sink, RunLogStore])
def test_a_private_attribute_whose_default_is_a_descriptor_reads_as_pydantic_reads_it(
        base: type[BaseModel]) -> None:
    """pydantic calls the ``__get__`` of such a default (a function reads as a bound method):
    the shortcut leaves those to it, in the class that declares them and in subclasses."""

    class Plain(BaseModel):
        _f: Any = PrivateAttr(default=answer)

    class Component(base):  # type: ignore[valid-type,misc]
        _f: Any = PrivateAttr(default=None)

    class Sub(Component):
        _f: Any = PrivateAttr(default=answer)

    expected = Plain()._f
    got = Sub()._f
    assert type(got) is type(expected)  # a bound method, as pydantic gives it
    assert (got(), expected()) == ("from a function default, bound to a Sub",
                                   "from a function default, bound to a Plain")
    assert Component()._f is None
