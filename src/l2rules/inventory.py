"""Inventory: loading exposure inventories (association pools, CSV files, DataFrames).

A load is one transaction: a file with a bad row changes nothing, unless
``skip_bad`` is set, in which case each bad row is stored in ``load_rejection``
with its reason and the rest is loaded. Exposures are identified by their
FILENAME stem, so loading a pool again updates its rows in place.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import hashlib
import itertools
import json
import logging
import operator
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from ._lazy import loaded, pandas as pd
from . import schema
from .config import DB, L2RulesError
from .migrate import require_migrated
from .outputs import gc_paused, to_frame

log = logging.getLogger(__name__)

#: Values that mean "missing" in any column.
NULLS = frozenset({"", "null"})
#: Flag values that mean "not set"; any other text means set, as the pipeline reads them.
FLAG_FALSE = frozenset({"n", "f", "false", "n/a"})
FLAG_NULL = frozenset({"", "null", "--"})
BATCH = 5000
#: Every spelling of a missing value in an ASCII field that needs no stripping.
_NULL_FORMS = frozenset({""} | {"".join(c) for c in itertools.product(*zip("null", "NULL"))})

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


@dataclass
class LoadResult:
    """What one load did."""

    source: str
    pool_id: int | None = None
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    template_rows: int = 0
    rejections: list[InventoryError] = field(default_factory=list)
    #: "bulk" (columnar, see ``l2rules.bulk``) or "rows" (line by line).
    method: str = "rows"
    #: Why the bulk path gave the load to the row loader, when it did.
    declined: str | None = None

    @property
    def loaded(self) -> int:
        return self.inserted + self.updated


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
class _Table:
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


def read_file(path: str | Path) -> _Table:
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

    table = _Table(str(path), header, header_line, rows(), reread=reread)
    return table


def read_frame(frame: pd.DataFrame, name: str) -> _Table:
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

    return _Table(name, header, 1, rows(), reread=reread)


# --- turning rows into exposures ---------------------------------------------------------------

_TEXT_COLUMNS = [c.name for c in schema.exposure.columns
                 if c.name not in {"id", "stem", "pool_id", "source_line", "exp_type", "extra", "filename",
                                   "version", "withdrawn_at", *schema.FLAG_COLUMNS}]
_INSERT_COLUMNS = ["stem", "filename", "pool_id", "source_line", "exp_type", *schema.FLAG_COLUMNS,
                   *_TEXT_COLUMNS, "extra"]


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    text = value.strip().lower()
    if text in FLAG_NULL:
        return None
    return text not in FLAG_FALSE


class _Converter:
    """Validates one source's rows and turns them into exposure and candidate records."""

    def __init__(self, table: _Table):
        self.table = table
        names = column_names(table.header)
        seen: dict[str, int] = {}
        for index, name in enumerate(names, start=1):
            if name in seen:
                raise InventoryError(table.source, table.header_line, name.upper(),
                                     f"column appears twice (fields {seen[name]} and {index})")
            seen[name] = index
        for required in REQUIRED_COLUMNS:
            if required not in seen:
                raise InventoryError(table.source, table.header_line, required.upper(),
                                     f"missing required column {required.upper()}")
        self.names = names
        self.width = len(names)
        index = {n: i for i, n in enumerate(names)}
        self.i_filename, self.i_exp_type = index["filename"], index["exp_type"]
        self.i_candidate = index.get("asn_candidate")
        self.flags = [(index.get(f)) for f in schema.FLAG_COLUMNS]
        self.text = [index.get(c) for c in _TEXT_COLUMNS]
        # Picks the text columns out of a row's values in one C call; a missing column reads the
        # None appended after the row's last value.
        self._pick_text = operator.itemgetter(*(self.width if i is None else i for i in self.text))
        known = set(schema.POOL_COLUMNS)
        self.extra = [(n, i) for i, n in enumerate(names) if n not in known]
        self.seen: dict[str, tuple[int, int]] = {}  # stem -> (line, hash of values), current batch
        self._candidates: dict[str | None, list[tuple[str, str]]] = {}  # ASN_CANDIDATE text -> pairs
        self._flags: dict[str | None, bool | None] = {}  # flag text -> value (few distinct spellings)

    def values(self, fields: list[str]) -> list[str | None]:
        """The row's values: stripped, with NULL/null/empty (any case) as None."""
        line = "|".join(fields)
        # Printable ASCII has no whitespace but the space: no space next to a separator or at an end
        # means no field to strip.
        if (line.isascii() and line.isprintable() and " |" not in line and "| " not in line
                and line[:1] != " " and line[-1:] != " "):
            # Nothing to strip and only ASCII: a NULL is one of the spellings in _NULL_FORMS.
            return [None if f in _NULL_FORMS else f for f in fields]
        return [None if f.strip().lower() in NULLS else f.strip() for f in fields]

    def convert(self, number: int, fields: list[str], pool_id: int):
        """(record, candidates, fingerprint) for the exposure table, or None for a repeated identical row.

        Repeats are recognised here within the current batch (``seen`` is cleared by the
        writer at each batch); across batches the writer finds them in the database.
        """
        source = self.table.source
        if len(fields) != self.width:
            raise InventoryError(source, number, str(min(len(fields), self.width) + 1),
                                 f"wrong number of fields: {len(fields)}, the header has {self.width}",
                                 "|".join(fields))
        values = self.values(fields)
        filename = values[self.i_filename]
        if filename is None:
            raise InventoryError(source, number, "FILENAME", "FILENAME is empty", "|".join(fields))
        exp_type = values[self.i_exp_type]
        if exp_type is not None and exp_type.lower() == "exp_type":
            raise TemplateRow(source, number, "EXP_TYPE", TemplateRow.REASON, "|".join(fields))
        if exp_type is None:
            raise InventoryError(source, number, "EXP_TYPE", "EXP_TYPE is empty", "|".join(fields))
        stem = exposure_stem(filename)
        fingerprint = hash(tuple(values))
        previous = self.seen.get(stem)
        if previous is not None:
            if previous[1] == fingerprint:
                return None
            raise InventoryError(source, number, "FILENAME",
                                 f"duplicate exposure {filename} (first at line {previous[0]}) with conflicting values",
                                 "|".join(fields))
        candidates = []
        if self.i_candidate is not None:
            text = values[self.i_candidate]
            candidates = self._candidates.get(text)
            if candidates is None:
                try:
                    candidates = parse_candidates(text)
                except ValueError as exc:
                    raise InventoryError(source, number, "ASN_CANDIDATE", str(exc), "|".join(fields)) from None
                if len(self._candidates) >= 4096:
                    self._candidates.clear()
                self._candidates[text] = candidates
        self.seen[stem] = (number, fingerprint)
        record = [None, stem, filename, pool_id, number, exp_type.upper()]  # [0]: the id, set by the writer
        flags = self._flags
        for i in self.flags:
            if i is None:
                record.append(None)
                continue
            value = values[i]
            try:
                record.append(flags[value])
            except KeyError:
                result = _flag(value)
                if len(flags) < 1024:
                    flags[value] = result
                record.append(result)
        values.append(None)  # the missing columns' value, for _pick_text
        record += self._pick_text(values)
        record.append({n: values[i] for n, i in self.extra} if self.extra else None)
        return record, candidates, fingerprint


# --- loading -----------------------------------------------------------------------------------

def _read_rows(table: _Table, converter: _Converter, writer: "_Writer", result: LoadResult, skip_bad: bool,
               bar) -> None:
    """Convert the source's rows and hand them to the writer, batch by batch."""
    pool_id = result.pool_id
    for number, fields in table.rows:
        result.rows += 1
        try:
            converted = converter.convert(number, fields, pool_id)
        except TemplateRow as exc:
            # Known artefact of test pools (see the pools README): kept with its reason, not loaded.
            result.template_rows += 1
            result.rejections.append(exc)
            continue
        except InventoryError as exc:
            if not skip_bad:
                writer.flush()  # an earlier line's error (a repeat across batches) is reported first
                raise
            result.rejections.append(exc)
            continue
        if converted is None:
            result.duplicates += 1
            continue
        writer.add(number, fields, *converted)
        if len(writer.batch) >= BATCH:
            bar.update(writer.flush())
    bar.update(writer.flush())


METHODS = ("auto", "bulk", "rows")


def load(source: str | Path | pd.DataFrame, db: DB = None, *, name: str | None = None,
         skip_bad: bool = False, progress: bool | None = None, method: str = "auto") -> LoadResult:
    """Load one pool file, CSV file or DataFrame into the catalog database, in one transaction.

    ``method``: ``"auto"`` tries the bulk path for a file (``l2rules.bulk``) and gives
    it to the row loader when the bulk path declines it; ``"rows"`` uses the row loader
    only; ``"bulk"`` raises when the bulk path declines.
    """
    if method not in METHODS:
        raise L2RulesError(f"unknown load method {method!r}; choose one of {', '.join(METHODS)}")
    engine = require_migrated(db, create=True)
    show = sys.stderr.isatty() if progress is None else progress
    frames = loaded("pandas")  # a DataFrame can only come from an imported pandas
    declined = None
    if frames is not None and isinstance(source, frames.DataFrame):
        if method == "bulk":
            raise L2RulesError("the bulk path loads files; a DataFrame takes the row loader")
        table = read_frame(source, name or "dataframe")
        pool_name = name or "dataframe"
    else:
        pool_name = name or Path(source).name
        if method != "rows" and Path(source).is_file():
            from . import bulk

            try:
                return bulk.load_file(engine, Path(source), pool_name, progress=show, force=method == "bulk")
            except bulk.NotBulk as exc:
                if method == "bulk":
                    raise L2RulesError(f"{source}: the bulk path declines this file: {exc}") from None
                declined = str(exc)
                log.info("%s: loaded line by line: %s", source, exc)
        table = read_file(source)
    converter = _Converter(table)
    result = LoadResult(table.source, declined=declined)
    with engine.begin() as conn:
        pool_id = _upsert_pool(conn, pool_name, table.source, converter.names)
        result.pool_id = pool_id
        writer = _Writer(conn, converter, result, skip_bad)
        bar = _progress(show, table.source)
        with gc_paused():  # rows make no reference cycles
            _read_rows(table, converter, writer, result, skip_bad, bar)
        bar.close()
        writer.finish()
        result.rejected = len(result.rejections) - result.template_rows
        # Errors found at batch time come later in the list than they occur in the source.
        result.rejections.sort(key=lambda e: e.line or 0)
        finish_load(conn, pool_id, table.source, table.sha256, result.rejections)
    if engine.dialect.name == "sqlite" and result.loaded >= _TRUNCATE_WAL_AFTER:
        _truncate_wal(engine)
    return result


def finish_load(conn, pool_id: int, source: str, sha256: str | None, rejections: list[InventoryError]) -> None:
    """The end of a load, in its transaction: the source's rejections and the pool's count and digest.

    ``conn`` is a SQLAlchemy connection or ``bulk``'s ADBC stand-in: plain statements only.
    """
    # The rejections of a source describe its latest load.
    conn.execute(schema.load_rejection.delete().where(schema.load_rejection.c.source == source))
    e, p = schema.exposure, schema.pool
    # The exposures of the pool this delivery did not hold are still marked with its time (see
    # _upsert_pool): they are withdrawn, and their version goes up (if one comes back, it is a new version).
    this_load = sa.select(p.c.loaded_at).where(p.c.id == pool_id).scalar_subquery()
    conn.execute(e.update().where(e.c.pool_id == pool_id, e.c.withdrawn_at == this_load)
                 .values(version=e.c.version + 1))
    now = dt.datetime.now(dt.timezone.utc)
    rows = [{"source": e.source, "line": e.line, "column": e.column, "reason": e.reason, "raw": e.raw,
             "rejected_at": now} for e in rejections]
    for start in range(0, len(rows), 1000):
        conn.execute(schema.load_rejection.insert().values(rows[start:start + 1000]))
    conn.execute(schema.pool.update().where(schema.pool.c.id == pool_id).values(
        n_exposures=sa.select(sa.func.count()).where(e.c.pool_id == pool_id, e.c.withdrawn_at.is_(None))
        .scalar_subquery(),
        sha256=sha256))


#: Rows a load must write before the SQLite WAL file is truncated after it.
_TRUNCATE_WAL_AFTER = 100_000


def _truncate_wal(engine: sa.Engine) -> None:
    """Checkpoint and truncate the SQLite write-ahead log after a large load, if no one is reading.

    A large load leaves a WAL file as large as the data it wrote. If the process then
    exits without closing its connections, every later process that opens the catalog
    reads that whole file again to rebuild the WAL index (seconds per GB): a 10,000-row
    load into a catalog of 10,000,000 took 10 s instead of 0.8 s. Best effort: with a
    reader or writer in the way the checkpoint gives up at once, and nothing changes.
    """
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            timeout = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
            cursor.execute("PRAGMA busy_timeout = 0")
            try:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                cursor.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        except conn.dialect.dbapi.Error:
            pass
        finally:
            cursor.close()


def load_many(sources: Iterable[str | Path], db: DB = None, **options) -> list[LoadResult]:
    return [load(s, db, **options) for s in sources]


def _progress(show: bool, label: str):
    from tqdm import tqdm

    return tqdm(desc=os.path.basename(label), unit=" exposures", disable=not show, file=sys.stderr)


def _upsert_pool(conn: sa.Connection, name: str, source: str, columns: list[str]) -> int:
    p = schema.pool
    now = dt.datetime.now(dt.timezone.utc)
    values = {"source": source, "columns": "|".join(columns), "loaded_at": now}
    pool_id = conn.execute(sa.select(p.c.id).where(p.c.name == name)).scalar()
    if pool_id is None:
        return conn.execute(p.insert().values(name=name, n_exposures=0, **values).returning(p.c.id)).scalar_one()
    conn.execute(p.update().where(p.c.id == pool_id).values(**values))
    # A pool delivered again is its new state: its exposures are marked withdrawn by this load until the
    # delivery holds them (the writer clears the mark); finish_load settles the ones left marked.
    e = schema.exposure
    conn.execute(e.update().where(e.c.pool_id == pool_id, e.c.withdrawn_at.is_(None)).values(withdrawn_at=now))
    return pool_id


_EXPOSURE_COLUMNS = ["id", *_INSERT_COLUMNS]
#: The values that make an exposure's version (extra last), and their places in a writer's record.
_VERSIONED_COLUMNS = [c for c in _INSERT_COLUMNS if c not in ("stem", "pool_id", "source_line")]
_VERSIONED_POSITIONS = [_EXPOSURE_COLUMNS.index(c) for c in _VERSIONED_COLUMNS]
#: n new exposure ids on PostgreSQL. The sequence is looked up once (a subquery): called per
#: row, pg_get_serial_sequence made drawing the ids of a million exposures take 2 s.
PG_NEW_IDS = ("SELECT nextval((SELECT pg_get_serial_sequence('exposure', 'id'))::regclass) AS v "
              "FROM generate_series(1, %s)")
_CANDIDATE_COLUMNS = ["exposure_id", "position", "cand_id", "cand_type"]
_NULL_JSON = json.dumps(None)


@dataclass
class DeferredIndexes:
    """What a load into an empty catalog drops, to build again once at its end, in its transaction."""

    indexes: list = field(default_factory=list)
    unique: list = field(default_factory=list)
    foreign_keys: list = field(default_factory=list)

    @classmethod
    def drop(cls, conn, *, postgres: bool, unique: bool = False) -> "DeferredIndexes":
        """Into an empty catalog, drop the secondary indexes; on PostgreSQL also the foreign keys
        (checked by a trigger per row, but by one join when added back) and, with ``unique``, the
        stem's unique constraint. SQLite's constraints are part of its tables: they stay.

        ``conn`` is a SQLAlchemy connection or ``bulk``'s ADBC stand-in: DDL statements only.
        """
        e = schema.exposure
        if conn.execute(sa.select(e.c.id).limit(1)).first() is not None:
            return cls()
        deferred = cls(indexes=[*e.indexes, *schema.exposure_candidate.indexes])
        if postgres:
            deferred.foreign_keys = [*e.foreign_key_constraints, *schema.exposure_candidate.foreign_key_constraints]
            if unique:
                deferred.unique = [c for c in e.constraints if isinstance(c, sa.UniqueConstraint)]
        for constraint in [*deferred.foreign_keys, *deferred.unique]:
            conn.execute(sa.schema.DropConstraint(constraint))
        for index in deferred.indexes:
            conn.execute(sa.schema.DropIndex(index))
        return deferred

    def restore(self, conn) -> None:
        for constraint in self.unique:  # first: a repeated exposure fails before the rest is built
            conn.execute(sa.schema.AddConstraint(constraint))
        for index in self.indexes:
            conn.execute(sa.schema.CreateIndex(index))
        for constraint in self.foreign_keys:
            conn.execute(sa.schema.AddConstraint(constraint))


def _fast_sqlite_binding(sqlite3) -> None:
    """Bind None and bool through registered adapters: the same values (NULL, 0/1) as without them.

    Without an adapter, the sqlite3 module looks for one, then for ``__adapt__`` and
    ``__conform__``, for every None and bool it binds; an exposure row has dozens of them,
    and those look-ups were a quarter of the time of an insert.
    """
    sqlite3.register_adapter(type(None), _same)
    sqlite3.register_adapter(bool, int)


def _same(value):
    return value


class _Writer:
    """Writes the exposures of one load in batches, with the DB-API's bulk paths.

    Each batch is first inserted as new exposures (``executemany`` on SQLite, ``COPY`` on
    PostgreSQL) inside a savepoint; if a FILENAME stem is already in the catalog the batch
    is rolled back to the savepoint and written row by row's kind: new stems inserted,
    stems from earlier loads updated in place (keeping their id), stems this load has
    already written compared with their first row (an identical repeat is counted, a
    different one is an error naming both lines). Into an empty catalog the secondary
    indexes (and on PostgreSQL the foreign keys) are dropped for the load and built once
    at its end, in the same transaction.
    """

    def __init__(self, conn: sa.Connection, converter: _Converter, result: LoadResult, skip_bad: bool):
        self.conn, self.converter, self.result, self.skip_bad = conn, converter, result, skip_bad
        self.postgres = conn.dialect.name == "postgresql"
        self.dbapi = conn.connection.dbapi_connection
        if not self.postgres:
            _fast_sqlite_binding(conn.dialect.dbapi)
        self.cursor = self.dbapi.cursor()
        self.batch: list[tuple] = []
        self.optimistic = True
        self.written = bytearray()  # bit per exposure id written by this load
        e = schema.exposure
        # The unique stem stays: repeats and stems of earlier loads are found through it.
        self.deferred = DeferredIndexes.drop(conn, postgres=self.postgres)
        if not self.postgres:
            self.next_id = (conn.execute(sa.select(sa.func.max(e.c.id))).scalar() or 0) + 1
        names = ", ".join(_EXPOSURE_COLUMNS)
        marks = ", ".join("%s" if self.postgres else "?" for _ in _EXPOSURE_COLUMNS)
        self.insert_sql = f"INSERT INTO exposure ({names}) VALUES ({marks})"
        self.copy_sql = f"COPY exposure ({names}) FROM STDIN"
        mark = "%s" if self.postgres else "?"
        sets = ", ".join(f"{c} = {mark}" for c in _INSERT_COLUMNS if c != "stem")
        # An update in place is a new version of the exposure when a value differs (compared with the
        # row as stored: the right-hand sides of an UPDATE read the old row); where it sits does not count.
        if self.postgres:
            differs = [f"{c} IS DISTINCT FROM %s" for c in _VERSIONED_COLUMNS[:-1]]
            differs.append("extra::jsonb IS DISTINCT FROM CAST(%s AS jsonb)")  # as JSON, not as text
        else:
            differs = [f"{c} IS NOT ?" for c in _VERSIONED_COLUMNS[:-1]]
            differs.append("json(extra) IS NOT json(?)")
        self.update_sql = (f"UPDATE exposure SET version = version + CASE WHEN {' OR '.join(differs)} "
                           f"THEN 1 ELSE 0 END, withdrawn_at = NULL, {sets} WHERE id = {mark}")
        mark = "%s" if self.postgres else "?"
        self.cand_sql = f"INSERT INTO exposure_candidate ({', '.join(_CANDIDATE_COLUMNS)}) VALUES ({', '.join([mark] * 4)})"
        self.cand_copy_sql = f"COPY exposure_candidate ({', '.join(_CANDIDATE_COLUMNS)}) FROM STDIN"

    def add(self, number: int, fields: list[str], record: list, candidates: list, fingerprint: int) -> None:
        extra = record[-1]
        record[-1] = _NULL_JSON if extra is None else json.dumps(extra)
        self.batch.append((record, candidates, fingerprint, number, fields))

    # -- ids ---------------------------------------------------------------------------------
    def _new_ids(self, n: int) -> list[int]:
        if self.postgres:
            self.cursor.execute(PG_NEW_IDS, (n,))
            return [row[0] for row in self.cursor.fetchall()]
        first = self.next_id
        return list(range(first, first + n))

    def _mark(self, ids: Iterable[int]) -> None:
        written = self.written
        for i in ids:
            byte = i >> 3
            if byte >= len(written):
                written.extend(bytes(max(byte + 1 - len(written), len(written))))
            written[byte] |= 1 << (i & 7)

    def _is_written(self, i: int) -> bool:
        byte = i >> 3
        return byte < len(self.written) and bool(self.written[byte] & (1 << (i & 7)))

    # -- writing -----------------------------------------------------------------------------
    def _insert(self, rows: list[tuple], cands: list[tuple]) -> None:
        cur = self.cursor
        if self.postgres:
            with cur.copy(self.copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            if cands:
                with cur.copy(self.cand_copy_sql) as copy:
                    for row in cands:
                        copy.write_row(row)
        else:
            cur.executemany(self.insert_sql, rows)
            if cands:
                cur.executemany(self.cand_sql, cands)

    @staticmethod
    def _rows(items, ids) -> tuple[list[list], list[tuple]]:
        rows = []
        cands = []
        for i, (record, candidates, *_rest) in zip(ids, items):
            record[0] = i
            rows.append(record)
            if candidates:
                cands.extend((i, pos, cid, ctype) for pos, (cid, ctype) in enumerate(candidates))
        return rows, cands

    def flush(self) -> int:
        """Write the current batch; returns how many rows of the source it covered."""
        items, self.batch = self.batch, []
        self.converter.seen.clear()
        if not items:
            return 0
        if self.optimistic:
            ids = self._new_ids(len(items))
            rows, cands = self._rows(items, ids)
            self.cursor.execute("SAVEPOINT l2rules_batch")
            try:
                self._insert(rows, cands)
            except self.conn.dialect.dbapi.IntegrityError:
                # A stem is already in the catalog: this source updates it (or repeats it).
                self.cursor.execute("ROLLBACK TO SAVEPOINT l2rules_batch")
                self.cursor.execute("RELEASE SAVEPOINT l2rules_batch")
                self.optimistic = False
            else:
                self.cursor.execute("RELEASE SAVEPOINT l2rules_batch")
                if not self.postgres:
                    self.next_id += len(items)
                self._mark(ids)
                self.result.inserted += len(items)
                return len(items)
        self._flush_mixed(items)
        return len(items)

    def _existing(self, stems: list[str]) -> dict[str, tuple[int, int]]:
        e = schema.exposure
        found: dict[str, tuple[int, int]] = {}
        for start in range(0, len(stems), 900):
            chunk = stems[start:start + 900]
            query = sa.select(e.c.stem, e.c.id, e.c.source_line).where(e.c.stem.in_(chunk))
            found.update((stem, (i, line)) for stem, i, line in self.conn.execute(query))
        return found

    def _flush_mixed(self, items: list[tuple]) -> None:
        existing = self._existing([item[0][1] for item in items])
        new, old, repeats = [], [], []
        for item in items:
            hit = existing.get(item[0][1])
            if hit is None:
                new.append(item)
            elif self._is_written(hit[0]):
                repeats.append((item, hit[1]))
            else:
                old.append((item, hit[0]))
        if repeats:
            self._check_repeats(repeats)
        cur = self.cursor
        if old:
            ids = [i for _item, i in old]
            versioned = _VERSIONED_POSITIONS
            cur.executemany(self.update_sql, [(*(item[0][k] for k in versioned), *item[0][2:], i)
                                              for item, i in old])
            for start in range(0, len(ids), 900):
                chunk = ids[start:start + 900]
                marks = ", ".join(["%s" if self.postgres else "?"] * len(chunk))
                cur.execute(f"DELETE FROM exposure_candidate WHERE exposure_id IN ({marks})", chunk)
            cands = [(i, pos, cid, ctype) for item, i in old for pos, (cid, ctype) in enumerate(item[1])]
            if cands:
                cur.executemany(self.cand_sql, cands)
            self._mark(ids)
            self.result.updated += len(old)
        if new:
            ids = self._new_ids(len(new))
            if not self.postgres:
                self.next_id += len(new)
            rows, cands = self._rows(new, ids)
            self._insert(rows, cands)
            self._mark(ids)
            self.result.inserted += len(new)
        # A batch with no stem from an earlier load: the next one is probably all new again.
        self.optimistic = not old

    def _check_repeats(self, repeats: list[tuple]) -> None:
        """Rows whose stem this load wrote from an earlier batch: identical repeat or conflict."""
        firsts = self.converter.table.reread({line for _item, line in repeats}) if self.converter.table.reread else {}
        errors = []
        for (record, _cands, fingerprint, number, fields), first in repeats:
            first_fields = firsts.get(first)
            if first_fields is not None and hash(tuple(self.converter.values(first_fields))) == fingerprint:
                self.result.duplicates += 1
                continue
            errors.append(InventoryError(
                self.converter.table.source, number, "FILENAME",
                f"duplicate exposure {record[2]} (first at line {first}) with conflicting values", "|".join(fields)))
        if errors:
            if not self.skip_bad:
                raise errors[0]
            self.result.rejections.extend(errors)

    def finish(self) -> None:
        """Build the indexes dropped for a load into an empty catalog."""
        self.deferred.restore(self.conn)
        self.cursor.close()


def rejections(db: DB = None) -> pd.DataFrame:
    """Every row a ``skip_bad`` load refused, with its reason."""
    engine = require_migrated(db)
    with engine.connect() as conn:
        return to_frame(conn.execute(sa.select(schema.load_rejection).order_by(schema.load_rejection.c.id)))


def exposures(db: DB = None, pool: str | None = None) -> pd.DataFrame:
    """The loaded exposures (every stored column), optionally of one pool."""
    engine = require_migrated(db)
    e, p = schema.exposure, schema.pool
    query = sa.select(e, p.c.name.label("pool")).join(p, p.c.id == e.c.pool_id).order_by(e.c.id)
    if pool:
        query = query.where(p.c.name == pool)
    with engine.connect() as conn:
        return to_frame(conn.execute(query))
