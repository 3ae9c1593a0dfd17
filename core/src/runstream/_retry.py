"""Retry policies for task steps: :class:`Retry`."""

from __future__ import annotations

import math
import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator, model_validator

from ._errors import ParameterError, TaskError

__all__ = ["Retry"]


def _type_name(value: str | type[BaseException]) -> str:
    if isinstance(value, str):
        return value
    return value.__name__ if value.__module__ == "builtins" else (
        f"{value.__module__}.{value.__qualname__}")


ErrorSpec = Annotated[str | type[BaseException], PlainSerializer(_type_name, return_type=str)]

#: Errors that fail the same way on every attempt: retried only when named in ``retry_on``.
_NEVER_BY_DEFAULT: tuple[type[BaseException], ...] = (ParameterError, TaskError)


class Retry(BaseModel):
    """How often, and after which errors, a task step is run again.

    Attempt ``n`` (from 1) that fails with a matching error is followed by a ``step.retrying``
    event and a pause of ``delay`` seconds (``fixed``) or ``delay * 2 ** (n - 1)`` seconds
    (``exponential``), at most ``max_delay``; with ``jitter`` the pause is drawn uniformly between
    half of that and all of it, so that many runs retrying one service spread out.

    An error may ask for a longer pause itself: see :meth:`pause` (``retry_after``).

    ``retry_on`` lists exception classes or their names (``"TimeoutError"``, or with the module:
    ``"httpx.ReadTimeout"``); an error matches when it is an instance of one of them (a name
    matches the error's class or any base class). Empty (the default) retries every
    ``Exception`` except :class:`ParameterError` and :class:`TaskError`, which would fail the
    same way again.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True,
                              defer_build=True)

    max_attempts: int = Field(default=3, ge=1, le=1000,
                              description="Attempts in all, the first one included.")
    backoff: Literal["fixed", "exponential"] = Field(
        default="exponential", description="How the pause grows between attempts.")
    delay: float = Field(default=1.0, ge=0, allow_inf_nan=False,
                         description="Seconds before the second attempt.")
    max_delay: float = Field(default=30.0, ge=0, allow_inf_nan=False,
                             description="Upper bound of any pause, in seconds.")
    jitter: bool = Field(default=False,
                         description="Randomise each pause between half and all of it.")
    retry_on: list[ErrorSpec] = Field(
        default_factory=list,
        description="Exception classes or names to retry on; empty: any Exception except "
                    "ParameterError and TaskError.")

    @field_validator("retry_on")
    @classmethod
    def _valid_specs(cls, value: list[Any]) -> list[Any]:
        for spec in value:
            if isinstance(spec, str) and not all(p.isidentifier() for p in spec.split(".")):
                raise ValueError(f"retry_on: {spec!r} is not an exception name like "
                                 "'TimeoutError' or 'httpx.ReadTimeout'")
            if isinstance(spec, type) and not issubclass(spec, Exception):
                raise ValueError(f"retry_on: {spec.__name__} is not an Exception subclass")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> Retry:
        if self.max_delay < self.delay:
            raise ValueError(f"max_delay ({self.max_delay}) is less than delay ({self.delay})")
        return self

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether attempt ``attempt`` (from 1), which raised ``error``, is followed by another."""
        if attempt >= self.max_attempts or not isinstance(error, Exception):
            return False
        if not self.retry_on:
            return not isinstance(error, _NEVER_BY_DEFAULT)
        names: set[str] | None = None
        for spec in self.retry_on:
            if isinstance(spec, type):
                if isinstance(error, spec):
                    return True
                continue
            if names is None:
                names = set()
                for klass in type(error).__mro__:
                    names.add(klass.__name__)
                    names.add(f"{klass.__module__}.{klass.__qualname__}")
            if spec in names:
                return True
        return False

    def pause(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (from 1) before the next one.

        An ``error`` with a ``retry_after`` attribute (seconds, a non-negative number: the
        pause a server asked for, e.g. its ``Retry-After`` header) makes the pause at least
        that long, and still at most ``max_delay``.
        """
        base = self.delay if self.backoff == "fixed" else self.delay * 2.0 ** (attempt - 1)
        base = min(base, self.max_delay)
        if self.jitter:
            base = random.uniform(base / 2, base)
        asked = getattr(error, "retry_after", None)
        if (isinstance(asked, (int, float)) and not isinstance(asked, bool)
                and math.isfinite(asked) and asked > base):
            base = min(float(asked), self.max_delay)
        return base
