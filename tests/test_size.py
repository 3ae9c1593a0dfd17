"""The cheap JSON size estimate of events (runstream._size) and its bound."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from runstream._size import FACTOR, Unmeasured, estimate, json_size


def exact(data: Any) -> int:
    return len(json.dumps(data, ensure_ascii=False, default=str).encode("utf-8",
                                                                        "backslashreplace"))


#: Values whose JSON is much longer than they look: the estimate must still bound them.
HOSTILE: list[Any] = [
    "é" * 600,  # 2 bytes of UTF-8 each
    "€" * 500,  # 3
    "😀" * 300,  # 4, and one Python character each
    "\x01" * 1000,  # escaped: 6 bytes each
    "\ud800" * 100,  # lone surrogates: \ud800, 6 bytes each
    '"\\' * 300,  # escaped quotes and backslashes
    "\u2028\u2029\x85" * 100,
    10 ** 300, -(10 ** 299), 2 ** 63, -(2 ** 63) + 1, 0, 7, -1,
    1.5e-300, -2.2250738585072014e-308, 0.0, float("nan"), float("inf"),
    True, False, None,
    b"\x00\xff'\"" * 100,
    [[[[1, 2.5, "x"]]]] * 50,
    [10 ** 300] * 50,
    [0] * 1000,
    [1.5e-300] * 1000,
    {"k" * 100: [None, True, {"n": -(10 ** 50)}]},
    ("tuple", 1, 2.0),
    {},
    [],
    "",
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_the_json_of_an_event_is_never_more_than_factor_times_its_estimate(value: Any) -> None:
    for data in ({"v": value}, {"": value}, {"type": "chunk", "nested": {"v": [value]}}):
        assert exact(data) <= FACTOR * estimate(data), data
        assert json_size(data) == exact(data)


def test_random_events_stay_within_the_factor() -> None:
    rng = random.Random(10)
    alphabet = ["a", "é", "€", "😀", "\x00", "\n", '"', "\\", "\u2028", "\ud800"]

    def value(depth: int) -> Any:
        kind = rng.randrange(8 if depth < 4 else 5)
        if kind == 0:
            return "".join(rng.choice(alphabet) for _ in range(rng.randrange(50)))
        if kind == 1:
            return rng.randrange(-(10 ** rng.randrange(1, 60)), 10 ** rng.randrange(1, 60))
        if kind == 2:
            return rng.uniform(-1e300, 1e300) * 10.0 ** -rng.randrange(600)
        if kind == 3:
            return rng.choice([True, False, None])
        if kind == 4:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(20)))
        if kind == 5:
            return [value(depth + 1) for _ in range(rng.randrange(6))]
        if kind == 6:
            return tuple(value(depth + 1) for _ in range(rng.randrange(6)))
        return {"".join(rng.choice(alphabet) for _ in range(rng.randrange(8))): value(depth + 1)
                for _ in range(rng.randrange(6))}

    for _ in range(2_000):
        data = {f"k{i}": value(0) for i in range(rng.randrange(5))}
        assert exact(data) <= FACTOR * estimate(data), data


def test_the_estimate_of_a_token_event_is_close_to_its_json_size() -> None:
    # The channel's byte accounting uses it: it must not be far off for the common events.
    for data in ({"type": "chunk", "text": "Hello "}, {"type": "chunk", "i": 12},
                 {"type": "status", "status": "thinking", "progress": 0.5, "done": False}):
        assert 0.8 <= estimate(data) / exact(data) <= 1.25, data


def test_values_it_cannot_bound_are_left_to_the_exact_measurement() -> None:
    class Model:
        def __str__(self) -> str:
            return "x" * 10_000

    deep: Any = []
    for _ in range(100):
        deep = [deep]
    for data in ({"m": Model()}, {"s": {1, 2}}, {"deep": deep}):
        with pytest.raises(Unmeasured):
            estimate(data)
    with pytest.raises(TypeError):
        estimate({1: "int keys are written as strings by json"})  # type: ignore[dict-item]


class Recording:
    """A stand-in for a run's channel that records the size of each event pushed."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def limit_bytes(self, max_bytes: int) -> None:
        pass

    def push(self, item: Any, nbytes: int = 0) -> None:
        self.sizes.append(nbytes)


@pytest.mark.parametrize("data", [
    {"type": "chunk", "text": "Hello "}, {"type": "chunk", "i": 12}, {"i": -(10 ** 40)},
    {"nested": {"a": [1, 2.5, None, True, "x"]}, "b": b"raw"}, {},
])
def test_the_engine_sizes_events_as_estimate_does(data: dict[str, Any]) -> None:
    # Run.publish_step_event has its own copy of estimate's loop (a call would cost a fifth).
    from runstream import ComponentConfig, Config, Runtime
    from runstream._run import Run
    from runstream._runlog import RunLog

    runtime = Runtime(Config(run_log_store=ComponentConfig(type="memory")))
    channel = Recording()
    run = Run(runtime, RunLog(run_id="r", pipeline="p", parameters={}), {},
              channel)  # type: ignore[arg-type]
    run.publish_step_event("s", data)
    assert channel.sizes == [estimate(data)]
