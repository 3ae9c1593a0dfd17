"""runstream-stdout: the ``stdout`` sink, pretty live output on a terminal, JSON lines
otherwise."""

import typing as _t  # private: the package's public names are __all__ (see __dir__)

if _t.TYPE_CHECKING:
    from ._sink import StdoutSink

__all__ = ["StdoutSink"]


def __getattr__(name: str) -> _t.Any:
    # Imported on first use, not with the package: runstream loads this package's entry point
    # (runstream_stdout._plugin) in every process, and _sink imports rich.
    if name == "StdoutSink":
        from ._sink import StdoutSink

        globals()[name] = StdoutSink
        return StdoutSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
