"""runstream-redis: the ``redis`` event log (replay, follow, cancel and run limits shared by
every process that uses the same Redis)."""

from ._log import RedisEventLog
from ._url import mask_url

__all__ = ["RedisEventLog", "mask_url"]
