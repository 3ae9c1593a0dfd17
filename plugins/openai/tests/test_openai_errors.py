"""Retry-After parsing (seconds, HTTP dates, retry-after-ms) for the retryable errors."""

from __future__ import annotations

import email.utils
import time

import pytest
from runstream_openai import ModelServerError
from runstream_openai._errors import retry_after


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after": "2"}, 2.0),
    ({"retry-after": "0.5"}, 0.5),
    ({"retry-after-ms": "150", "retry-after": "9"}, 0.15),
    ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
    ({"retry-after": "-1"}, None),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "soon"}, None),
    ({"retry-after": ""}, None),
    ({}, None),
])
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers) == expected


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    value = retry_after({"retry-after": later})
    assert value is not None and 25 <= value <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert retry_after({"retry-after": past}) == 0.0


def test_the_error_carries_the_pause() -> None:
    error = ModelServerError("busy", 429, 1.5)
    assert (error.status_code, error.retry_after, str(error)) == (429, 1.5, "busy")
