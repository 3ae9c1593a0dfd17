"""Run ids: time-sortable, at least 128 random bits, always valid run ids."""

from __future__ import annotations

import re
import time

from runstream import RUN_ID_PATTERN, new_run_id, validate_run_id

#: ``YYYYmmdd-HHMMSS-`` then the random part, lowercase hex.
_FORMAT = re.compile(r"^(\d{8}-\d{6})-([0-9a-f]+)$")


def test_run_ids_carry_at_least_128_random_bits_and_are_unique() -> None:
    ids = [new_run_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    randoms = []
    for run_id in ids:
        match = _FORMAT.match(run_id)
        assert match is not None, run_id
        assert re.match(RUN_ID_PATTERN, run_id) and validate_run_id(run_id) == run_id
        randoms.append(match.group(2))
    # 4 bits per hex digit: the random part alone holds >= 128 bits...
    assert {len(r) * 4 for r in randoms} == {128}
    # ...and every digit of it varies (no fixed or counter-like part posing as entropy).
    for position in range(32):
        assert len({r[position] for r in randoms}) == 16


def test_run_ids_sort_by_start_time() -> None:
    before = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_id = new_run_id()
    after = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    assert before <= run_id[:15] <= after
    older = "20200101-000000-" + "f" * 32
    assert sorted([run_id, older]) == [older, run_id]
