"""DSNs in messages: the password masked in every way libpq lets one write it."""

from __future__ import annotations

import pytest
from runstream_postgres._dsn import mask_dsn, redact


@pytest.mark.parametrize(("dsn", "masked"), [
    ("postgresql://app:pw123@db:5432/runs", "postgresql://app:***@db:5432/runs"),
    ("postgresql://app@db/runs", "postgresql://app@db/runs"),
    ("postgresql://db/runs", "postgresql://db/runs"),
    ("postgresql://app:p%40ss:w@h1:5432,h2:5433/runs?sslmode=require",
     "postgresql://app:***@h1:5432,h2:5433/runs?sslmode=require"),
    ("postgres://db/runs?sslmode=require&password=xyz987&user=app",
     "postgres://db/runs?sslmode=require&password=***&user=app"),
    ("host=db user=app password=secret1 dbname=runs",
     "host=db user=app password=*** dbname=runs"),
    ("host=db password='with space' dbname=runs", "host=db password=*** dbname=runs"),
    ("host=db PASSWORD = s3cret dbname=runs", "host=db PASSWORD = *** dbname=runs"),
])
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


def test_redact_finds_the_password_as_written_and_decoded() -> None:
    dsn = "postgresql://app:p%40ssword@db/runs"
    assert redact("auth failed for p@ssword and p%40ssword", dsn) == "auth failed for *** and ***"
    assert redact("nothing to hide", "postgresql://db/runs") == "nothing to hide"
