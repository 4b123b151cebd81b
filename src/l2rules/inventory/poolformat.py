"""Reading the pool format: header, NULLs, flags, candidates, and the errors that name file, line and column.

JWST association pools are ``|``-separated with ``#`` comment lines before the header and
column names in either case; plain comma CSV files and DataFrames with the same columns
are read the same way. Both load paths (``rows``, ``columnar``) read values by these rules.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .._lazy import pandas as pd
from ..config import L2RulesError

#: Values that mean "missing" in any column.
NULLS = frozenset({"", "null"})
#: Flag values that mean "not set"; any other text means set, as the pipeline reads them.
FLAG_FALSE = frozenset({"n", "f", "false", "n/a"})
FLAG_NULL = frozenset({"", "null", "--"})
#: Every spelling of a missing value in an ASCII field that needs no stripping.
NULL_FORMS = frozenset({""} | {"".join(c) for c in itertools.product(*zip("null", "NULL"))})

_PAIR = r"\(\s*'([^']*)'\s*,\s*'([^']*)'\s*\)"
_PAIRS = re.compile(_PAIR)
_LIST = re.compile(rf"^\[\s*(?:{_PAIR}\s*(?:,\s*{_PAIR}\s*)*,?\s*)?\]$")


class InventoryError(L2RulesError):
    """Bad input: the message names the file, the line and the column."""

    exit_code = 2

    def __init__(self, source: str, line: int | None, column: str | None, reason: str, raw: str | None = None):
        self.source, self.line, self.column, self.reason, self.raw = source, line, column, reason, raw
        where = source if line is None else f"{source}:{line}"
        col = f": column {column}" if column else ""
        super().__init__(f"{where}{col}: {reason}")


class TemplateRow(InventoryError):
    """A leftover row of a pool template (its values repeat the column names): set aside, never an exposure."""

    REASON = "template leftover: the row's values repeat the column names"


def exposure_stem(filename: str) -> str:
    """The exposure's identity: FILENAME without its extension and trailing product suffix.

    ``jw01_00001_nrca1_uncal.fits`` -> ``jw01_00001_nrca1``; a name without a
    ``_suffix.ext`` tail is its own stem.
    """
    base = filename.strip()
    for ext in (".fits.gz", ".fits", ".asdf"):
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
            head, sep, _suffix = base.rpartition("_")
            return head if sep and head else base
    return base


def parse_candidates(text: str | None) -> list[tuple[str, str]]:
    """ASN_CANDIDATE as (id, type) pairs; raises ValueError when it cannot be read.

    A list of ('o001', 'observation') pairs is the normal form; a bare integer is one
    candidate of type ``unknown``; a bare pair is read as no candidate, as the pipeline does.
    """
    if text is None:
        return []
    text = text.strip()
    if _LIST.match(text):
        return [(a.lower(), b.lower()) for a, b in _PAIRS.findall(text)]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"cannot read ASN_CANDIDATE {text!r}: expected a list like [('o001', 'observation')]") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return [(str(value), "unknown")]
    if isinstance(value, tuple):
        return []
    if isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return [(str(a).lower(), str(b).lower()) for a, b in value]
    raise ValueError(f"cannot read ASN_CANDIDATE {text!r}: expected a list of (id, type) pairs")


# --- reading sources ---------------------------------------------------------------------------

@dataclass
class SourceTable:
    """A source as a header and numbered rows of raw text (None = missing)."""

    source: str
    header: list[str]
    header_line: int
    rows: Iterator[tuple[int, list[str]]]
    sha256: str | None = None
    #: Fields of given line numbers, read again (to compare a repeated exposure with its first row).
    reread: Callable[[set[int]], dict[int, list[str]]] | None = None


def _decoded_lines(path: Path, digest) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            digest.update(raw)
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                before = raw[: exc.start].decode("utf-8", errors="replace")
                raise _NotUtf8(str(path), number, before,
                               f"bytes that are not UTF-8 ({raw[exc.start:exc.end]!r})") from None


class _NotUtf8(InventoryError):
    def __init__(self, source: str, line: int, before: str, reason: str):
        self.before = before
        super().__init__(source, line, f"character {len(before) + 1}", reason)

    def in_column(self, header: list[str], delimiter: str) -> InventoryError:
        """The same error naming the pool column the bad bytes stand in."""
        field = header[min(self.before.count(delimiter), len(header) - 1)].strip().upper()
        return InventoryError(self.source, self.line, f"{field} ({self.column})", self.reason)


#: Columns every inventory must have.
REQUIRED_COLUMNS = ("filename", "exp_type")


def find_header(lines: Iterable[tuple[int, str]]) -> tuple[int, str] | None:
    """The header among numbered lines: the first that is neither empty nor a ``#`` comment."""
    for number, text in lines:
        stripped = text.strip()
        if stripped and not stripped.startswith("#"):
            return number, text
    return None


def split_header(text: str) -> tuple[str, list[str]]:
    """The header's delimiter (``|`` when it holds one, else ``,``) and its fields."""
    delimiter = "|" if "|" in text else ","
    return delimiter, next(csv.reader([text], delimiter=delimiter))


def column_names(header: list[str]) -> list[str]:
    """Header fields as column names: stripped, lower case (pools spell them in either case)."""
    return [h.strip().lower() for h in header]


def read_file(path: str | Path) -> SourceTable:
    """Open a pool or CSV file: `#` comments before the header, `|` or `,` separated."""
    path = Path(path)
    if not path.is_file():
        raise InventoryError(str(path), None, None, "no such file")
    digest = hashlib.sha256()
    lines = _decoded_lines(path, digest)
    found = find_header(lines)
    if found is None:
        raise InventoryError(str(path), None, None, "empty file: no header line")
    header_line, header_text = found
    delimiter, header = split_header(header_text)

    def split(text: str) -> list[str] | None:
        if not text.strip() or text.lstrip().startswith("#"):
            return None
        if delimiter == "|" and '"' not in text:
            return text.rstrip("\r\n").split("|")
        return next(csv.reader([text], delimiter=delimiter))

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for number, text in lines:
                fields = split(text)
                if fields is not None:
                    yield number, fields
        except _NotUtf8 as exc:
            raise exc.in_column(header, delimiter) from None
        table.sha256 = digest.hexdigest()

    def reread(numbers: set[int]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        last = max(numbers, default=0)
        for number, text in _decoded_lines(path, hashlib.sha256()):
            if number in numbers:
                fields = split(text)
                if fields is not None:
                    found[number] = fields
            if number >= last:
                break
        return found

    table = SourceTable(str(path), header, header_line, rows(), reread=reread)
    return table


def read_frame(frame: pd.DataFrame, name: str) -> SourceTable:
    """A DataFrame as a source: row N is reported as line N+1 (line 1 being the header)."""
    header = [str(c) for c in frame.columns]

    def text(values) -> list[str]:
        return ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in values]

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, values in enumerate(frame.itertuples(index=False, name=None), start=2):
            yield number, text(values)

    def reread(numbers: set[int]) -> dict[int, list[str]]:
        return {n: text(next(frame.iloc[n - 2:n - 1].itertuples(index=False, name=None)))
                for n in numbers if 2 <= n < len(frame) + 2}

    return SourceTable(name, header, 1, rows(), reread=reread)


def flag(value: str | None) -> bool | None:
    """A flag's value as the pipeline reads it: None (unknown), False or True."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in FLAG_NULL:
        return None
    return text not in FLAG_FALSE
