"""asn_generate's ``--save-orphans`` table: the pool as the pipeline reads it.

asn_generate writes as orphans the pool rows that no association came from (``Main.orphaned``). Its
associations' members are copies of pool rows without the row's index, so no row is ever counted as
used: the table is every row of the pool, in every mode (checked at jwst 1.13.4 and 3.0.0 on the 12
sample pools, the 31 change fixtures and jwst's own test pools: 84 pools at 1.13.4, the 74 with an
ASN_CANDIDATE column at 3.0.0). What it writes is what astropy makes of the pool on the way: the
comments before the header as ``# text``, column names and values stripped and lower-cased, an empty
value ``null``, ``|``-separated with the csv module's quoting.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

from ..inventory import stdin
from ..inventory.poolformat import InventoryError, line_body
from ..outputs import OutputDirectory
from .columns import AssociationError

#: The file asn_generate names when ``--save-orphans`` is given without one.
DEFAULT_NAME = "orphaned.csv"
_COMMENT = re.compile(r"\s*#")


def orphan_lines(pool: str | Path) -> Iterator[str]:
    """The lines asn_generate's ``--save-orphans`` writes for ``pool`` (a ``|``-separated pool file), each
    with its line end; a bad header or row fails as it reaches it (as asn_generate fails on the pool)."""
    label = stdin.label(pool)  # (-: standard input, read from its copy, named <stdin>)
    if not stdin.is_stdin(pool) and not Path(pool).is_file():
        raise AssociationError(f"--save-orphans: {pool}: not a pool file (the table is the file's rows)")
    path = stdin.resolved(pool)
    comments: list[str] = []
    header: list[str] | None = None
    out = io.StringIO()
    writer = csv.writer(out, delimiter="|", quotechar='"', lineterminator="\n")

    def written(fields: list[str]) -> str:
        out.seek(0)
        out.truncate()
        writer.writerow(fields)
        return out.getvalue()

    with open(path, encoding="utf-8-sig", newline="") as fh:
        for number, line in enumerate(fh, start=1):
            text = line_body(line)
            if _COMMENT.match(text):
                if header is None:
                    comments.append(_COMMENT.sub("", text, count=1).strip())
                continue
            if not text.strip():
                continue
            fields = next(csv.reader([text], delimiter="|", quotechar='"'))
            if header is None:
                if "|" not in text:
                    raise AssociationError(f"--save-orphans: {label} is not a pool ('|'-separated): "
                                           "asn_generate reads no other file")
                header = [name.strip().lower() for name in fields]
                yield from (f"# {comment}\n" for comment in comments)
                yield written(header)
            elif len(fields) != len(header):  # asn_generate fails on such a row too
                raise InventoryError(label, number, None,
                                     f"{len(fields)} fields where the header has {len(header)}")
            else:
                yield written([value.strip().lower() or "null" for value in fields])
    if header is None:
        raise InventoryError(label, None, None, "empty file: no header line")


def orphans_table(pool: str | Path) -> str:
    """The whole text of :func:`orphan_lines` (for a small pool, or a test)."""
    return "".join(orphan_lines(pool))


def check_pool_file(pool: str | Path) -> None:
    """Fail now, before anything is written, when ``pool`` has no orphans table to write (read to its header)."""
    for line in orphan_lines(pool):
        if not line.startswith("#"):
            return


def write_orphans(pool: str | Path, directory: OutputDirectory | str | Path, name: str = DEFAULT_NAME) -> str:
    """Write ``pool``'s orphans table as ``name`` in ``directory`` (all or nothing, not through a symbolic
    link: :class:`~l2rules.outputs.OutputDirectory`); returns its path."""
    if not isinstance(directory, OutputDirectory):
        with OutputDirectory(directory) as opened:
            return write_orphans(pool, opened, name)
    *parts, last = Path(name).parts or ("",)
    if Path(name).is_absolute() or ".." in parts or not last or last == "..":
        raise AssociationError(f"--save-orphans {name}: a file name under the output directory")
    for part in parts:  # (a name with directories: each entered as the output's own)
        directory = directory.sub(part)
    with directory.open(last, "w", encoding="utf-8", newline="") as fh:
        fh.writelines(orphan_lines(pool))
    return str(directory.path / last)
