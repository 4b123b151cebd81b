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
import io
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ._lazy import loaded, pandas as pd
from . import schema
from .config import DB, L2RulesError
from .migrate import require_migrated
from .outputs import to_frame

#: Values that mean "missing" in any column.
NULLS = frozenset({"", "null"})
#: Flag values that mean "not set"; any other text means set, as the pipeline reads them.
FLAG_FALSE = frozenset({"n", "f", "false", "n/a"})
FLAG_NULL = frozenset({"", "null", "--"})
BATCH = 5000

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


def read_file(path: str | Path) -> _Table:
    """Open a pool or CSV file: `#` comments before the header, `|` or `,` separated."""
    path = Path(path)
    if not path.is_file():
        raise InventoryError(str(path), None, None, "no such file")
    digest = hashlib.sha256()
    lines = _decoded_lines(path, digest)
    header_line, header_text = 0, None
    for number, text in lines:
        stripped = text.strip()
        if stripped.startswith("#") or not stripped:
            continue
        header_line, header_text = number, text
        break
    if header_text is None:
        raise InventoryError(str(path), header_line or None, None, "empty file: no header line")
    delimiter = "|" if "|" in header_text else ","
    header = next(csv.reader([header_text], delimiter=delimiter))

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for number, text in lines:
                if not text.strip() or text.lstrip().startswith("#"):
                    continue
                if delimiter == "|" and '"' not in text:
                    yield number, text.rstrip("\r\n").split("|")
                else:
                    yield number, next(csv.reader([text], delimiter=delimiter))
        except _NotUtf8 as exc:
            raise exc.in_column(header, delimiter) from None
        table.sha256 = digest.hexdigest()

    table = _Table(str(path), header, header_line, rows())
    return table


def read_frame(frame: pd.DataFrame, name: str) -> _Table:
    """A DataFrame as a source: row N is reported as line N+1 (line 1 being the header)."""
    header = [str(c) for c in frame.columns]

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, values in enumerate(frame.itertuples(index=False, name=None), start=2):
            yield number, ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in values]

    return _Table(name, header, 1, rows())


# --- turning rows into exposures ---------------------------------------------------------------

_TEXT_COLUMNS = [c.name for c in schema.exposure.columns
                 if c.name not in {"id", "stem", "pool_id", "source_line", "exp_type", "extra", "filename",
                                   *schema.FLAG_COLUMNS}]
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
        names = [h.strip().lower() for h in table.header]
        seen: dict[str, int] = {}
        for index, name in enumerate(names, start=1):
            if name in seen:
                raise InventoryError(table.source, table.header_line, name.upper(),
                                     f"column appears twice (fields {seen[name]} and {index})")
            seen[name] = index
        for required in ("filename", "exp_type"):
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
        known = set(schema.POOL_COLUMNS)
        self.extra = [(n, i) for i, n in enumerate(names) if n not in known]
        self.seen: dict[str, tuple[int, int]] = {}  # stem -> (line, hash of values)

    def convert(self, number: int, fields: list[str], pool_id: int):
        """One record for the exposure table plus its candidates, or None for a repeated identical row."""
        source = self.table.source
        if len(fields) != self.width:
            raise InventoryError(source, number, str(min(len(fields), self.width) + 1),
                                 f"wrong number of fields: {len(fields)}, the header has {self.width}",
                                 "|".join(fields))
        values = [None if f.strip().lower() in NULLS else f.strip() for f in fields]
        filename = values[self.i_filename]
        if filename is None:
            raise InventoryError(source, number, "FILENAME", "FILENAME is empty", "|".join(fields))
        exp_type = values[self.i_exp_type]
        if exp_type is not None and exp_type.lower() == "exp_type":
            raise TemplateRow(source, number, "EXP_TYPE",
                              "template leftover: the row's values repeat the column names", "|".join(fields))
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
            try:
                candidates = parse_candidates(values[self.i_candidate])
            except ValueError as exc:
                raise InventoryError(source, number, "ASN_CANDIDATE", str(exc), "|".join(fields)) from None
        self.seen[stem] = (number, fingerprint)
        record = [stem, filename, pool_id, number, exp_type.upper()]
        record += [None if i is None else _flag(values[i]) for i in self.flags]
        record += [None if i is None else values[i] for i in self.text]
        record.append({n: values[i] for n, i in self.extra} if self.extra else None)
        return record, candidates


# --- loading -----------------------------------------------------------------------------------

def load(source: str | Path | pd.DataFrame, db: DB = None, *, name: str | None = None,
         skip_bad: bool = False, progress: bool | None = None) -> LoadResult:
    """Load one pool file, CSV file or DataFrame into the catalog database, in one transaction."""
    engine = require_migrated(db)
    frames = loaded("pandas")  # a DataFrame can only come from an imported pandas
    if frames is not None and isinstance(source, frames.DataFrame):
        table = read_frame(source, name or "dataframe")
        pool_name = name or "dataframe"
    else:
        table = read_file(source)
        pool_name = name or Path(source).name
    converter = _Converter(table)
    result = LoadResult(table.source)
    show = sys.stderr.isatty() if progress is None else progress
    with engine.begin() as conn:
        pool_id = _upsert_pool(conn, pool_name, table.source, converter.names)
        result.pool_id = pool_id
        before = conn.execute(sa.select(sa.func.count()).select_from(schema.exposure)).scalar_one()
        touched = 0
        batch: list[list] = []
        cands: dict[str, list[tuple[str, str]]] = {}
        bar = _progress(show, table.source)
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
                    raise
                result.rejections.append(exc)
                continue
            if converted is None:
                result.duplicates += 1
                continue
            record, candidates = converted
            batch.append(record)
            cands[record[0]] = candidates
            if len(batch) >= BATCH:
                touched += _write(conn, batch, cands)
                bar.update(len(batch))
                batch, cands = [], {}
        if batch:
            touched += _write(conn, batch, cands)
            bar.update(len(batch))
        bar.close()
        after = conn.execute(sa.select(sa.func.count()).select_from(schema.exposure)).scalar_one()
        result.inserted = after - before
        result.updated = touched - result.inserted
        result.rejected = len(result.rejections) - result.template_rows
        # The rejections of a source describe its latest load.
        conn.execute(schema.load_rejection.delete().where(schema.load_rejection.c.source == table.source))
        if result.rejections:
            now = dt.datetime.now(dt.timezone.utc)
            conn.execute(schema.load_rejection.insert(), [
                {"source": e.source, "line": e.line, "column": e.column, "reason": e.reason, "raw": e.raw,
                 "rejected_at": now} for e in result.rejections])
        conn.execute(schema.pool.update().where(schema.pool.c.id == pool_id).values(
            n_exposures=sa.select(sa.func.count()).where(schema.exposure.c.pool_id == pool_id).scalar_subquery(),
            sha256=table.sha256))
    return result


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
    return pool_id


def _dialect_insert(conn: sa.Connection):
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _write(conn: sa.Connection, batch: list[list], cands: dict[str, list[tuple[str, str]]]) -> int:
    """Upsert one batch of exposures (by stem) and replace their candidates."""
    e, c = schema.exposure, schema.exposure_candidate
    insert = _dialect_insert(conn)(e)
    update = {col: insert.excluded[col] for col in _INSERT_COLUMNS if col != "stem"}
    stmt = insert.on_conflict_do_update(index_elements=[e.c.stem], set_=update)
    conn.execute(stmt, [dict(zip(_INSERT_COLUMNS, r)) for r in batch])
    ids = dict(conn.execute(sa.select(e.c.stem, e.c.id).where(e.c.stem.in_(list(cands)))).all())
    conn.execute(c.delete().where(c.c.exposure_id.in_(list(ids.values()))))
    rows = [{"exposure_id": ids[stem], "position": pos, "cand_id": cid, "cand_type": ctype}
            for stem, pairs in cands.items() for pos, (cid, ctype) in enumerate(pairs)]
    if rows:
        conn.execute(c.insert(), rows)
    return len(batch)


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
