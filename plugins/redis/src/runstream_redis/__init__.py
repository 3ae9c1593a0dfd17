"""runstream-redis: the ``redis`` event log (replay, follow, cancel and run limits shared by
every process that uses the same Redis)."""

import typing as _t  # private: the package's public names are __all__ (see __dir__)

from ._url import mask_url

if _t.TYPE_CHECKING:
    from ._log import RedisEventLog

__all__ = ["RedisEventLog", "mask_url"]


def __getattr__(name: str) -> _t.Any:
    # Imported on first use, not with the package: runstream loads this package's entry point
    # (runstream_redis._plugin) in every process, and _log imports redis-py.
    if name == "RedisEventLog":
        from ._log import RedisEventLog

        globals()[name] = RedisEventLog
        return RedisEventLog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
