"""The errors of an ``openai-chat`` step, and how the SDK's errors become them::

    RunstreamError
    ├── TaskError
    │   └── ModelRequestError     4xx: bad key, unknown model, context too long, bad request;
    │                             not retried by default (it would fail the same way again)
    └── ModelServerError          429, 5xx, an error event mid-stream; retried by ``retry``,
        └── ModelUnreachableError no answer from ``base_url`` (refused, DNS, timeout)

A missing API key is a :class:`ModelRequestError` too. Every message has the API key's text
replaced by ``***``: some servers echo the key they were given.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from runstream import RunstreamError, TaskError

if TYPE_CHECKING:
    import openai

__all__ = ["ModelRequestError", "ModelServerError", "ModelUnreachableError", "translate"]


class ModelRequestError(TaskError):
    """The model server rejected the request (4xx other than 429), or the step cannot send it
    (no API key). Retrying does not help: fix the option the message names."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        #: The HTTP status the server answered with; None when no request was sent.
        self.status_code = status_code


class ModelServerError(RunstreamError):
    """The model server is busy or failed (429, 5xx, an error mid-stream): worth retrying.

    ``retry_after`` is the pause the server asked for (``Retry-After`` or ``retry-after-ms``),
    in seconds, or None; :class:`runstream.Retry` waits at least that long before the next
    attempt (at most its ``max_delay``).
    """

    def __init__(self, message: str, status_code: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        #: The HTTP status, or None for an error event inside a stream that had begun.
        self.status_code = status_code
        #: Seconds the server asked to wait before retrying, or None.
        self.retry_after = retry_after


class ModelUnreachableError(ModelServerError):
    """No answer from the model server at ``base_url``: connection refused, name not found,
    or no byte within ``timeout``."""


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), or None."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if parsed.tzinfo is None:  # RFC 9110 dates are GMT
            parsed = parsed.replace(tzinfo=datetime.UTC)
        value = max(parsed.timestamp() - time.time(), 0.0)
    return value if math.isfinite(value) and value >= 0 else None


def _server_message(error: openai.APIError) -> str:
    body = error.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return error.message


def translate(error: openai.OpenAIError, *, step: str, base_url: str, model: str,
              secret: str | None) -> Exception:
    """The runstream error for an SDK error raised while step ``step`` talked to the server."""
    import openai  # imported already when the step was built (see _task)

    def clean(text: str) -> str:
        return text.replace(secret, "***") if secret else text

    where = f"openai-chat step '{step}' (model '{model}', base_url {base_url})"
    if isinstance(error, openai.APITimeoutError):
        return ModelUnreachableError(clean(
            f"{where}: no answer within the timeout; raise `timeout` or check that the server "
            "at base_url is up"))
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        return ModelUnreachableError(clean(
            f"{where}: cannot connect to the model server{detail}; check `base_url`"))
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        message = clean(f"{where}: HTTP {status}: {_server_message(error)}")
        if status == 429 or status >= 500:
            return ModelServerError(message, status, retry_after(error.response.headers))
        hint = {401: "; check the key in the environment variable named by `api_key_env`",
                404: "; check `model` and `base_url`"}.get(status, "")
        return ModelRequestError(message + hint, status)
    if isinstance(error, openai.APIError):
        # An error event inside a stream that had begun (the server's own message).
        return ModelServerError(clean(f"{where}: error mid-stream: {_server_message(error)}"))
    return ModelServerError(clean(f"{where}: {type(error).__name__}: {error}"))
