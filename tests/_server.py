"""`serve` lives in runstream.testing (plugin authors use it too); re-exported here for the
test modules that import it from `tests._server`."""

from runstream.testing import serve

__all__ = ["serve"]
