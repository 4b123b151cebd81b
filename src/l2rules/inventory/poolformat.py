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
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .._lazy import pandas as pd
from ..config import L2RulesError
from . import stdin

#: Values that mean "missing" in any column.
NULLS = frozenset({"", "null"})
#: Flag values that mean "not set"; any other text means set, as the pipeline reads them.
FLAG_FALSE = frozenset({"n", "f", "false", "n/a"})
FLAG_NULL = frozenset({"", "null", "--"})
#: Every spelling of a missing value in an ASCII field that needs no stripping.
NULL_FORMS = frozenset({""} | {"".join(c) for c in itertools.product(*zip("null", "NULL"))})

#: The UTF-8 byte-order mark spreadsheet programs write at the start of a file: not part of the header.
BOM = b"\xef\xbb\xbf"
#: Control characters no value may hold: NUL (PostgreSQL cannot store it) and the other C0
#: controls, refused on every backend alike. Tab may stand in a value; CR and LF end lines.
CONTROL = re.compile("[\x00-\x08\x0a-\x1f]")
#: Characters of a value echoed in an error line, at most (the row itself is kept whole in ``raw``).
ECHO = 80

_PAIR = r"\(\s*'([^']*)'\s*,\s*'([^']*)'\s*\)"
_PAIRS = re.compile(_PAIR)
_LIST = re.compile(rf"^\[\s*(?:{_PAIR}\s*(?:,\s*{_PAIR}\s*)*,?\s*)?\]$")


def visible(text: str) -> str:
    """``text`` with each control character but tab shown as its Unicode control picture (NUL as U+2400).

    What a rejected row keeps in ``load_rejection.raw`` and an error line shows: a NUL
    cannot be stored on PostgreSQL, and a line end would split the one-line error.
    """
    return CONTROL.sub(lambda m: chr(0x2400 + ord(m.group())), text) if CONTROL.search(text) else text


def echo(value: str) -> str:
    """A value as an error line quotes it: at most :data:`ECHO` characters, the cut marked with an ellipsis."""
    return value if len(value) <= ECHO else value[:ECHO - 1] + "\u2026"


class InventoryError(L2RulesError):
    """Bad input: the message names the file, the line and the column."""

    exit_code = 2

    def __init__(self, source: str, line: int | None, column: str | None, reason: str, raw: str | None = None):
        column = None if column is None else visible(echo(column))
        raw = None if raw is None else visible(raw)
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
    pairs = text.count("(")
    if pairs > MAX_CANDIDATES:  # counted before parsing: a 50 MB value must not take gigabytes first
        raise ValueError(f"{pairs} candidates: more than {MAX_CANDIDATES} for one exposure")
    text = text.strip()
    if _LIST.match(text):
        return [(a.lower(), b.lower()) for a, b in _PAIRS.findall(text)]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"cannot read ASN_CANDIDATE {echo(text)!r}: "
                         "expected a list like [('o001', 'observation')]") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return [(str(value), "unknown")]
    if isinstance(value, tuple):
        return []
    if isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return [(str(a).lower(), str(b).lower()) for a, b in value]
    raise ValueError(f"cannot read ASN_CANDIDATE {echo(text)!r}: expected a list of (id, type) pairs")


# --- reading sources ---------------------------------------------------------------------------

@dataclass
class SourceTable:
    """A source as a header and numbered rows of raw text; a row that cannot be read is its error."""

    source: str
    header: list[str]
    header_line: int
    rows: Iterator[tuple[int, list[str] | InventoryError]]
    sha256: str | None = None
    #: Fields of given line numbers, read again (to compare a repeated exposure with its first row).
    reread: Callable[[set[int]], dict[int, list[str]]] | None = None
    #: A file's size in bytes, and the bytes of it read so far (for a progress bar); None for other sources.
    size: int | None = None
    bytes_read: Callable[[], int] | None = None


class _CountingDigest:
    """A SHA-256 that also counts the bytes it was given: the bytes of the file read so far."""

    def __init__(self):
        self.hash, self.count = hashlib.sha256(), 0

    def update(self, data: bytes) -> None:
        self.hash.update(data)
        self.count += len(data)

    def hexdigest(self) -> str:
        return self.hash.hexdigest()


def _decoded_lines(path: Path, digest, label: str) -> Iterator[tuple[int, str | _NotUtf8]]:
    """The file's lines, numbered; a line that is not UTF-8 comes as its error (a bad row like any other:
    it fails the load, or under ``--skip-bad`` is kept as a rejection), naming the file ``label``."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            digest.update(raw)
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                before = raw[: exc.start].decode("utf-8", errors="replace")
                yield number, _NotUtf8(label, number, before,
                                       f"bytes that are not UTF-8 ({raw[exc.start:exc.end]!r})")


class _NotUtf8(InventoryError):
    def __init__(self, source: str, line: int, before: str, reason: str):
        self.before = before
        super().__init__(source, line, f"character {len(before) + 1}", reason)

    def in_column(self, header: list[str], delimiter: str) -> InventoryError:
        """The same error naming the pool column the bad bytes stand in."""
        field = echo(header[min(self.before.count(delimiter), len(header) - 1)].strip().upper())
        return InventoryError(self.source, self.line, f"{field} ({self.column})", self.reason)


#: Columns every inventory must have.
REQUIRED_COLUMNS = ("filename", "exp_type")
#: The longest FILENAME, EXP_TYPE and candidate id or type the catalog's columns hold (``schema``):
#: PostgreSQL refuses a longer value, SQLite would keep it, so both loaders refuse it first.
MAX_FILENAME, MAX_EXP_TYPE, MAX_CANDIDATE = 255, 40, 40
#: The most candidates one exposure may name (the pipeline's pools name a handful).
MAX_CANDIDATES = 1000


def too_long(text: str, limit: int) -> str | None:
    """The reason ``text`` cannot be stored in a column of ``limit`` characters; None when it can."""
    return f"longer than {limit} characters ({len(text)}): {echo(text)!r}" if len(text) > limit else None


def find_header(lines: Iterable[tuple[int, str]]) -> tuple[int, str] | None:
    """The header among numbered lines: the first that is neither empty nor a ``#`` comment."""
    for number, text in lines:
        if isinstance(text, InventoryError):  # bytes that are not UTF-8 before or in the header
            raise text
        stripped = text.strip()
        if stripped and not stripped.startswith("#"):
            return number, text
    return None


def line_body(text: str) -> str:
    """A line without its line end: LF, CRLF, or a CR ending the file. Any other CR is a control character."""
    if text.endswith("\n"):
        text = text[:-1]
    return text[:-1] if text.endswith("\r") else text


def split_header(text: str) -> tuple[str, list[str]]:
    """The header's delimiter (``|`` when it holds one, else ``,``) and its fields.

    A trailing delimiter (``FILENAME|EXP_TYPE|``, as some tools write every line) ends
    the header: it names no column.
    """
    text = line_body(text)
    delimiter = "|" if "|" in text else ","
    # As a row is split (read_file): a pool header without quotes by the delimiter alone (the csv
    # module refuses a field over 128 KB), anything else by the csv module.
    fields = text.split("|") if delimiter == "|" and '"' not in text else next(csv.reader([text], delimiter=delimiter))
    while len(fields) > 1 and not fields[-1].strip():
        fields.pop()
    return delimiter, fields


def control_error(source: str, line: int, header: list[str], fields: list[str], joiner: str) -> InventoryError | None:
    """The error for the first control character among a line's ``fields`` (joined by ``joiner`` on the
    line), naming its pool column and its character on the line; None without one."""
    offset = 0
    for index, value in enumerate(fields):
        found = CONTROL.search(value)
        if found:
            code = ord(found.group())
            field = header[min(index, len(header) - 1)].strip().upper() if header else "?"
            return InventoryError(source, line, f"{field} (character {offset + found.start() + 1})",
                                  f"control character U+{code:04X}: a value may hold no control character but tab",
                                  joiner.join(fields))
        offset += len(value) + len(joiner)
    return None


def column_names(header: list[str]) -> list[str]:
    """Header fields as column names: stripped, lower case (pools spell them in either case)."""
    return [h.strip().lower() for h in header]


def not_a_file(path: str | Path) -> str:
    """Why ``path`` is not a file l2rules can read, from its status alone (a FIFO is never opened: opening it
    would wait for a writer that may never come)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return exc.strerror or str(exc)
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")
    return f"{kind}, not a pool file (a stream is read as standard input: - < {path})"


def read_file(path: str | Path) -> SourceTable:
    """Open a pool or CSV file: `#` comments before the header, `|` or `,` separated; ``-`` reads standard
    input (``inventory.stdin``: its errors name ``<stdin>``)."""
    label = stdin.label(path)
    if not stdin.is_stdin(path) and not Path(path).is_file():
        raise InventoryError(label, None, None, not_a_file(path))
    path = stdin.resolved(path)
    digest = _CountingDigest()
    lines = _decoded_lines(path, digest, label)
    found = find_header(lines)
    if found is None:
        raise InventoryError(label, None, None, "empty file: no header line")
    header_line, header_text = found
    if line_body(header_text).rstrip("\r").count("\r") and "\n" not in header_text:
        # the whole file read as one line: its lines end with a CR alone (classic Mac OS)
        raise InventoryError(label, header_line, None, "lines end with a CR alone (classic Mac OS): a pool's "
                             "lines end with LF or CRLF; convert it, e.g. `tr '\\r' '\\n' < FILE`")
    fields = line_body(header_text).split("|" if "|" in header_text else ",")
    bad = control_error(label, header_line, fields, fields, "|" if "|" in header_text else ",")
    if bad is not None:  # before the csv module, which reads a lone CR as a line end
        raise bad
    try:
        delimiter, header = split_header(header_text)
    except csv.Error as exc:  # a quoted field over the csv module's limit
        raise InventoryError(label, header_line, None, f"the header cannot be read: {exc}") from None

    def split(number: int, text: str) -> list[str] | InventoryError | None:
        """The line's fields; None for an empty or comment line; the error for a control character."""
        body = line_body(text)
        stripped = body.strip()
        if stripped.startswith("#") or not (stripped or CONTROL.search(body)):
            return None
        if CONTROL.search(body):  # before the csv module, which reads a lone CR as a line end
            return control_error(label, number, header, body.split(delimiter), delimiter)
        if delimiter == "|" and '"' not in body:
            return body.split("|")
        try:
            return next(csv.reader([body], delimiter=delimiter))
        except csv.Error as exc:  # a quoted field over the csv module's limit
            return InventoryError(label, number, None, f"the line cannot be read: {exc}", body)

    def rows() -> Iterator[tuple[int, list[str] | InventoryError]]:
        for number, text in lines:
            if isinstance(text, _NotUtf8):
                yield number, text.in_column(header, delimiter)
                continue
            fields = split(number, text)
            if fields is not None:
                yield number, fields
        table.sha256 = digest.hexdigest()

    def reread(numbers: set[int]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        last = max(numbers, default=0)
        for number, text in _decoded_lines(path, hashlib.sha256(), label):
            if number in numbers and isinstance(text, str):
                fields = split(number, text)
                if isinstance(fields, list):
                    found[number] = fields
            if number >= last:
                break
        return found

    table = SourceTable(label, header, header_line, rows(), reread=reread, size=path.stat().st_size,
                        bytes_read=lambda: digest.count)
    return table


def frame_table(frame: pd.DataFrame, name: str):
    """A DataFrame as pool text: a pyarrow Table of string columns, one per DataFrame column, in order.

    Through Arrow (``pyarrow.Table.from_pandas``), never ``str()``: a missing value of
    any dtype (None, NaN, ``pd.NA``, ``NaT``) is a missing value; booleans are ``true`` /
    ``false``, numbers as Arrow writes them (``1``, ``0.5``), dates and timestamps ISO 8601,
    categoricals their values. A column Arrow cannot read as one type is refused, naming it.
    """
    import pyarrow as pa

    header = [str(c) for c in frame.columns]
    # Positional names: from_pandas refuses repeated names, which the loader reports itself.
    plain = frame.set_axis([f"c{i}" for i in range(len(header))], axis=1)
    try:
        table = pa.Table.from_pandas(plain, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        column = str(exc).rpartition("column ")[2].split(" ")[0]
        field = header[int(column[1:])] if column[1:].isdigit() else None
        raise InventoryError(name, None, field and field.upper(),
                             f"values Arrow cannot read as one type ({echo(str(exc.args[0]))}): give the column one "
                             "dtype, e.g. .astype('string')") from None
    return pa.table([_text(table.column(i), name, header[i]) for i in range(len(header))], names=header)


def _text(column, name: str, field: str):
    """One Arrow column as text (see :func:`frame_table`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        return _text(column.cast(kind.value_type), name, field)
    if pa.types.is_null(kind):
        return pa.chunked_array([pa.nulls(len(column), pa.string())])
    if pa.types.is_timestamp(kind):
        # The coarsest unit that holds every value: no trailing zeros of nanoseconds.
        for unit in ("s", "ms", "us", "ns"):
            try:
                column = column.cast(pa.timestamp(unit, kind.tz))
                break
            except pa.ArrowInvalid:
                continue
        text = pc.replace_substring(column.cast(pa.string()), " ", "T", max_replacements=1)
        return pc.replace_substring_regex(text, r"([+-]\d\d)(\d\d)$", r"\1:\2")  # +0100 -> +01:00
    if (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind)
            or pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
            or pa.types.is_date(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
            or pa.types.is_string_view(kind)):
        try:
            return column.cast(pa.string())
        except pa.ArrowInvalid as exc:  # bytes that are not UTF-8
            raise InventoryError(name, None, field.upper(), f"values that are not text: {echo(str(exc))}") from None
    raise InventoryError(name, None, field.upper(),
                         f"values of type {kind}, which a pool column cannot hold: convert the column to text first")


def table_digest(table) -> str:
    """SHA-256 of a text table's names and values (a DataFrame's identity as a pool)."""
    import numpy as np

    digest = hashlib.sha256()
    for name, column in zip(table.column_names, table.columns):
        digest.update(name.encode() + b"\x00")
        array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        digest.update(np.asarray(array.is_null()).tobytes())
        _validity, offsets, data = array.buffers()
        if offsets is None:  # no values at all
            continue
        starts = np.frombuffer(offsets, np.int32)[array.offset:array.offset + len(array) + 1]
        digest.update((starts - starts[0]).tobytes())
        if data is not None and len(array):
            digest.update(memoryview(data)[starts[0]:starts[-1]])
    return digest.hexdigest()


def read_arrow(table, name: str, sha256: str | None = None) -> SourceTable:
    """A text table (:func:`frame_table`) as a source: row N is reported as line N+1 (line 1 being the header)."""
    header = table.column_names
    bad = control_error(name, 1, header, header, "|")
    if bad is not None:
        raise bad

    def fields(number: int, values: tuple) -> list[str] | InventoryError:
        text = ["" if v is None else v for v in values]
        return control_error(name, number, header, text, "|") if CONTROL.search("|".join(text)) else text

    def rows() -> Iterator[tuple[int, list[str] | InventoryError]]:
        number = 1
        for batch in table.to_batches(max_chunksize=5000):
            for values in zip(*(c.to_pylist() for c in batch.columns)):
                number += 1
                yield number, fields(number, values)

    def reread(numbers: set[int]) -> dict[int, list[str]]:
        found = {}
        for n in numbers:
            if 2 <= n < table.num_rows + 2:
                row = table.slice(n - 2, 1)
                text = fields(n, tuple(c[0].as_py() for c in row.columns))
                if isinstance(text, list):
                    found[n] = text
        return found

    return SourceTable(name, header, 1, rows(), sha256=sha256, reread=reread)


def flag(value: str | None) -> bool | None:
    """A flag's value as the pipeline reads it: None (unknown), False or True."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in FLAG_NULL:
        return None
    return text not in FLAG_FALSE
