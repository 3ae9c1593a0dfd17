"""runstream-redis: the ``redis`` event log (replay, follow, cancel and run limits shared by
every process that uses the same Redis)."""

import typing as _t  # private: the package's public names are __all__ (see __dir__)

from runstream import lazy_exports as _lazy_exports

from ._url import mask_url

if _t.TYPE_CHECKING:
    from ._log import RedisEventLog

__all__ = ["RedisEventLog", "mask_url"]


# Imported on first use, not with the package: runstream loads this package's entry point
# (runstream_redis._plugin) in every process, and _log imports redis-py.
__getattr__, __dir__ = _lazy_exports(__name__, {"RedisEventLog": "_log"})
