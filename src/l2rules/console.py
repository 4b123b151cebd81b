"""What l2rules writes on standard error besides its errors and warnings: progress bars and informational
messages ("12 work items written to w.csv"). One switch turns both off: :func:`set_quiet`, the command
line's ``-q/--quiet``. Errors and warnings are printed either way, and standard output is the same.
"""

from __future__ import annotations

import sys

_quiet = False


def set_quiet(quiet: bool) -> None:
    """No progress bars and no informational messages from now on (``-q``), or both again."""
    global _quiet
    _quiet = bool(quiet)


def quiet() -> bool:
    return _quiet


def progress(asked: bool | None) -> bool:
    """Whether to show progress bars: never when quiet; else as ``asked``, and when it is None (the
    default of every ``progress=`` argument) when standard error is a terminal."""
    if _quiet:
        return False
    return sys.stderr.isatty() if asked is None else asked


def info(message: str) -> None:
    """An informational message on standard error, unless quiet."""
    if not _quiet:
        print(message, file=sys.stderr)
