"""``-`` as a pool file: standard input.

Wherever a pool or CSV file is taken (``load``, ``worklist``, ``impact``, ``explain --pool``,
``asn``, ``run``, and the library functions under them), ``-`` reads standard input. It is
read once, into a file of a temporary directory (removed at exit), because a pool is read
more than once: its digest, a repeated row read again, the orphans table. The pool is named
:data:`NAME` (``stdin``, the name ``/dev/stdin`` gives it too), errors name :data:`LABEL`
(``<stdin>``) with the line and column, and it goes to the row loader (the bulk path reads
named files; ``--method bulk -`` declines). A file named ``-`` is given by a longer path
(``$PWD/-``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..config import L2RulesError

#: The argument that means standard input.
STDIN = "-"
#: What messages call standard input (as Python's tracebacks do).
LABEL = "<stdin>"
#: The name of the pool read from standard input.
NAME = "stdin"

_spooled: tuple[object, Path] | None = None  # (the stream read, its copy)


class NoStandardInput(L2RulesError):
    """``-`` was given and the process has no standard input (bad input: exit 2, as a pool's errors)."""

    exit_code = 2

    def __init__(self) -> None:
        super().__init__(f"{LABEL}: - reads standard input, and there is none")


def is_stdin(source: object) -> bool:
    """True when ``source`` is ``-`` (a string or a path)."""
    return isinstance(source, (str, os.PathLike)) and os.fspath(source) == STDIN


def label(source: object) -> str:
    """How messages name ``source``: ``<stdin>`` for ``-``, else its text."""
    return LABEL if is_stdin(source) else str(source)


def resolved(source: str | os.PathLike) -> Path:
    """The file to read for ``source``: standard input's copy for ``-`` (read at the first call), else its path."""
    return spooled() if is_stdin(source) else Path(source)


def spooled() -> Path:
    """Standard input's bytes in a file named :data:`NAME`, read the first time it is asked for (again only
    when ``sys.stdin`` is another stream, as a test that replaces it)."""
    global _spooled
    stream = sys.stdin
    if _spooled is not None and _spooled[0] is stream:
        return _spooled[1]
    if stream is None:
        raise NoStandardInput()
    if _spooled is not None:
        _remove(_spooled[1].parent)
    directory = Path(tempfile.mkdtemp(prefix="l2rules-stdin-"))
    atexit.register(_remove, directory)
    target = directory / NAME
    source = getattr(stream, "buffer", stream)
    with open(target, "wb") as out:
        while block := source.read(1 << 20):
            out.write(block.encode("utf-8") if isinstance(block, str) else block)
    _spooled = (stream, target)
    return target


def _remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
