"""The columnar path of an inventory load (the bulk path), for large, clean pool files and DataFrames.

The row loader (``rows``) reads a file line by line in Python: exact, but at
archive scale the per-row Python work (splitting, validating, building and binding
a 66-value record) was nine tenths of a load. This path does the same load with no
Python per row:

- pyarrow's CSV reader parses the file in batches (C++, in a thread beside the writing), turning
  every spelling of NULL into a missing value as it parses; a DataFrame comes as the
  Arrow table of its text (``poolformat.frame_table``), its values stripped and its
  NULLs found with Arrow compute;
- the derived columns (stem, upper-cased EXP_TYPE, flags, candidates, ``extra``) are
  computed per batch with Arrow compute, through each column's few distinct values;
- each batch is written with the database's bulk path: ``COPY`` on PostgreSQL, in the
  load's SQLAlchemy transaction; on SQLite, ADBC's ingest (a C loop binding the Arrow
  columns), in one transaction of a process of its own (see :func:`_load_sqlite`).
  Parsing runs in a thread beside the writing.

It takes only files the row loader would take without a word and without changing a
value: printable ASCII with no quote, no tab, no padding around a field, every line
after the header a row (after a byte-order mark, with LF or CRLF line ends, with or
without a trailing delimiter); template leftover rows it sets aside, as the row loader
does. A DataFrame's values may be any text but control characters.
Anything else - and any bad row, repeated exposure or exposure already in the
catalog - makes it give the load back
(:class:`NotBulk`, the transaction rolled back, nothing written) to the row loader,
which names the line and column of each error, keeps rejected rows and updates in
place. The result is the same either way; ``tests/test_bulk.py`` compares the two.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import logging
import os
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from .. import schema
from ..config import DatabaseError, L2RulesError, sqlite_busy_ms, storage_problem
from .poolformat import (
    BOM,
    CONTROL,
    MAX_CANDIDATE,
    MAX_EXP_TYPE,
    MAX_FILENAME,
    NULL_FORMS,
    REQUIRED_COLUMNS,
    TemplateRow,
    column_names,
    find_header,
    flag,
    line_body,
    parse_candidates,
    split_header,
)
from .store import (
    INSERT_COLUMNS,
    PG_NEW_IDS,
    TRUNCATE_WAL_AFTER,
    DeferredIndexes,
    LoadResult,
    driver_error,
    finish_load,
    progress_bar,
    truncate_wal,
    upsert_pool,
)

log = logging.getLogger(__name__)

#: Bytes a file may hold for this path: printable ASCII but the double quote, and line ends (LF, CRLF).
_ALLOWED = bytes(range(0x20, 0x7F)).replace(b'"', b"") + b"\n\r"
#: The name the reader gives the empty field after a trailing delimiter (a header name is stripped:
#: it never starts with a space).
_TRAILING = " trailing delimiter"
#: Bytes read (and parsed) at a time: about 2,800 rows of a 57-column pool. Peak memory grew
#: with it (a million rows: 310 MB with 1 MB blocks, 490 MB with 4, 690 MB with 8), time did not.
BLOCK = 1 << 20
#: The extensions ``poolformat.exposure_stem`` takes off a file name.
_EXTENSION = r"(?i)\.(?:fits\.gz|fits|asdf)$"
#: Why a file whose stems the catalog already holds (or that repeats one) goes to the row loader.
REPEATED = "an exposure already in the catalog or repeated in the file (the row loader updates or reports it)"


class NotBulk(Exception):
    """This file is not one for the bulk path; the reason says why. The row loader takes it."""


# --- reading ---------------------------------------------------------------------------------------

class _Checks:
    """The file's bytes after the header, checked (and hashed) block by block as they are read.

    The checks are what makes the row loader's work per value unnecessary: with printable
    ASCII only, no space beside a delimiter or a line end, no quote, no empty line and no
    comment line, no field needs stripping and every line is one row (so a row's line
    number is its position). Lines end with LF or CRLF, mixed as they come; a CR anywhere
    else is a control character, which the row loader refuses. A problem raises
    :class:`NotBulk`; the load is then given back.
    """

    def __init__(self, digest, delimiter: str):
        self.digest = digest
        self.delimiter = ord(delimiter)
        self.last = ord("\n")  # as if after a line end: the first byte is a line start
        self.tail = b"\n"  # the previous block's last bytes, for patterns across the cut
        self.space_at_end = False  # the last block ended with a space: the next byte decides

    def check(self, chunk: bytes) -> None:
        """Check the next block of the file (``b""`` at its end)."""
        if not chunk:
            if self.space_at_end:
                raise NotBulk("a space at the end of the file")
            if self.last == 13:
                raise NotBulk("a carriage return not before a line feed")
            return
        self.digest.update(chunk)
        if chunk.translate(None, _ALLOWED):
            raise NotBulk("bytes other than printable ASCII (or a double quote)")
        edge = self.tail + chunk[:3]
        if any(p in chunk or p in edge for p in (b"\n\n", b"\n\r\n", b"\n#")):
            raise NotBulk("an empty or a comment line among the rows")
        if ((self.last == 13 and chunk[:1] != b"\n")
                or chunk.count(b"\r") != chunk.count(b"\r\n") + chunk.endswith(b"\r")):
            raise NotBulk("a carriage return not before a line feed")
        if self._padded(chunk):
            raise NotBulk("a field padded with spaces")
        self.last = chunk[-1]
        self.tail = chunk[-2:]

    def _padded(self, chunk: bytes) -> bool:
        """Whether a space stands next to a delimiter or a line end (numpy: a find per pattern was 5x slower)."""
        import numpy as np

        a = np.frombuffer(chunk, np.uint8)
        ends = (self.delimiter, 10, 13)
        if self.space_at_end and a[0] in ends:
            return True
        spaces = np.flatnonzero(a == 32)
        if not spaces.size:
            self.space_at_end = False
            return False
        before = a[np.maximum(spaces - 1, 0)]
        if spaces[0] == 0:
            before[0] = self.last
        after = a[np.minimum(spaces + 1, len(a) - 1)]
        self.space_at_end = bool(spaces[-1] == len(a) - 1)
        if self.space_at_end:
            after[-1] = 32  # decided by the next block
        return bool(np.isin(before, ends).any() or np.isin(after, ends).any())


class _Source:
    """A pool file opened for the bulk path: its header read, its rows as Arrow batches."""

    plain = True  # printable ASCII without quotes (the checks): ``extra`` needs only backslashes escaped

    def __init__(self, path: Path):
        self.path, self.name = path, str(path)
        self.digest = hashlib.sha256()
        self.fh = open(path, "rb")
        try:
            self._header()
        except BaseException:
            self.fh.close()
            raise
        #: The file's size, and the bytes of it read so far (the progress bar's total and count).
        self.size, self.read = os.fstat(self.fh.fileno()).st_size, self.fh.tell()

    def _header(self) -> None:
        def lines() -> Iterator[tuple[int, str]]:  # read one at a time: the stream goes on after the header
            number = 0
            while raw := self.fh.readline():
                number += 1
                self.digest.update(raw)
                if number == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise NotBulk("the header is not UTF-8") from None

        found = find_header(lines())
        if found is None:
            raise NotBulk("no header line")
        self.header_line, text = found
        if CONTROL.search(line_body(text)):
            raise NotBulk("a control character in the header")
        try:
            self.delimiter, header = split_header(text)
        except csv.Error:
            raise NotBulk("a header the csv module cannot read") from None
        self.names = column_names(header)
        if len(set(self.names)) != len(self.names) or not set(REQUIRED_COLUMNS) <= set(self.names):
            raise NotBulk("the header repeats a column or lacks FILENAME or EXP_TYPE")
        if not text.endswith("\n"):
            raise NotBulk("no line after the header")

    def batches(self) -> Iterator:
        """The rows after the header as Arrow batches, parsed block by block.

        This code reads the file and hands pyarrow whole lines as bytes: pyarrow never
        calls back into Python. Its streaming reader over a Python file object did, from a
        C++ thread reading ahead, and a read still under way when the writer process
        exited aborted the process (``terminate called without an active exception``).
        """
        import pyarrow as pa
        from pyarrow import csv as pacsv

        parse_options = pacsv.ParseOptions(delimiter=self.delimiter, quote_char=False, ignore_empty_lines=False)
        checks = _Checks(self.digest, self.delimiter)
        rest, rows, options = b"", False, None
        while True:
            chunk = self.fh.read(BLOCK)
            self.read += len(chunk)
            checks.check(chunk)
            data = rest + chunk if rest else chunk
            cut = data.rfind(b"\n") + 1 if chunk else len(data)  # whole lines; at the end, what is left
            block, rest = memoryview(data)[:cut], data[cut:]
            if block:
                if options is None:
                    options = self._reader_options(data[:data.find(b"\n") + 1])
                try:
                    table = pacsv.read_csv(pa.py_buffer(block), read_options=options[0],
                                           parse_options=parse_options, convert_options=options[1])
                except pa.ArrowInvalid as exc:
                    raise NotBulk(f"the CSV reader: {str(exc).splitlines()[0]}") from None
                if _TRAILING in table.column_names:
                    if table.column(_TRAILING).null_count != table.num_rows:
                        raise NotBulk("a value after the last column")
                    table = table.drop_columns([_TRAILING])
                rows = rows or table.num_rows > 0
                yield from table.to_batches()
            if not chunk:
                break
        if not rows:
            raise NotBulk("no rows after the header")

    def _reader_options(self, first: bytes) -> tuple:
        """The reader's options, from the first row: with one more field than the header, ending
        with the delimiter, every row is read with a trailing delimiter (its empty field checked, then dropped)."""
        import pyarrow as pa
        from pyarrow import csv as pacsv

        names = list(self.names)
        body = first.rstrip(b"\r\n")
        if body.count(self.delimiter.encode()) == len(names) and body.endswith(self.delimiter.encode()):
            names.append(_TRAILING)
        # One thread: this reader runs in a thread of its own beside the writing already. With
        # pyarrow's threads, a writer process that declined a file right after a block was
        # parsed aborted at exit now and then (terminate called without an active exception,
        # 4 runs in 20), and parsing was no faster on two cores (200,000 rows: 1.9 s either way).
        return (pacsv.ReadOptions(column_names=names, block_size=BLOCK, use_threads=False),
                pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                     null_values=sorted(NULL_FORMS), strings_can_be_null=True))

    def template_rows(self, lines: list[int]) -> list[TemplateRow]:
        """The rows at ``lines`` (template leftovers), set aside with their text as the row loader keeps it."""
        wanted, found = set(lines), []
        if not wanted:
            return found
        with open(self.path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if number in wanted:
                    text = line_body(raw.decode("ascii"))
                    found.append(TemplateRow(self.name, number, "EXP_TYPE", TemplateRow.REASON,
                                             "|".join(text.split(self.delimiter))))
                    if len(found) == len(wanted):
                        break
        return found

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()

    def close(self) -> None:
        self.fh.close()


#: Rows of a DataFrame converted and written at a time (a few file blocks' worth: fewer kernel calls).
FRAME_BATCH = 16384
#: What Python's ``str.strip()`` takes off a value, but the control characters (refused before).
_SPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace() and not CONTROL.match(c))


class _ArrowSource:
    """A DataFrame's text table (``poolformat.frame_table``) for this path: row N is line N+1.

    Its values are read as the row loader reads them: stripped of what ``str.strip()``
    strips, NULL/null/empty (any case) missing. A control character anywhere, or a
    FILENAME or EXP_TYPE that is not ASCII (their upper case and stems are computed as
    ASCII here), gives the load back to the row loader.
    """

    header_line = 1
    plain = False  # values may hold quotes, tabs, any Unicode: ``extra`` is escaped value by value

    size = read = None  # no file: the progress bar counts exposures

    def __init__(self, table, name: str, sha256: str):
        self.table, self.name, self.sha256 = table, name, sha256
        self.names = column_names(table.column_names)
        if len(set(self.names)) != len(self.names) or not set(REQUIRED_COLUMNS) <= set(self.names):
            raise NotBulk("the columns repeat a name or lack FILENAME or EXP_TYPE")
        if any(CONTROL.search(n) for n in table.column_names):
            raise NotBulk("a control character in a column name")

    def batches(self) -> Iterator:
        import pyarrow as pa
        import pyarrow.compute as pc

        forms = pa.array(sorted(NULL_FORMS))
        missing = pa.array(["", "null"])
        for batch in self.table.to_batches(max_chunksize=FRAME_BATCH):
            columns = []
            for name, column in zip(self.names, batch.columns):
                if pc.all(pc.ascii_is_printable(column)).as_py() is not False:
                    # Printable ASCII (most columns): only spaces to strip, only NULL_FORMS to miss.
                    if pc.any(pc.starts_with(column, " ")).as_py() or pc.any(pc.ends_with(column, " ")).as_py():
                        column = pc.utf8_trim(column, characters=" ")
                    nulls = pc.is_in(column, value_set=forms)
                else:
                    if pc.any(pc.match_substring_regex(column, r"[\x00-\x08\x0a-\x1f]")).as_py():
                        raise NotBulk("a control character")
                    if name in REQUIRED_COLUMNS:
                        raise NotBulk(f"a {name.upper()} that is not printable ASCII")
                    column = pc.utf8_trim(column, characters=_SPACE)
                    nulls = pc.is_in(pc.ascii_lower(column), value_set=missing)
                if pc.any(nulls).as_py():
                    column = pc.if_else(nulls, pa.scalar(None, pa.string()), column)
                columns.append(column)
            yield pa.RecordBatch.from_arrays(columns, names=self.names)

    def template_rows(self, lines: list[int]) -> list[TemplateRow]:
        """The rows at ``lines`` (template leftovers), with their text as the row loader keeps it."""
        found = []
        for line in sorted(lines):
            values = [c[0].as_py() for c in self.table.slice(line - 2, 1).columns]
            found.append(TemplateRow(self.name, line, "EXP_TYPE", TemplateRow.REASON,
                                     "|".join("" if v is None else v for v in values)))
        return found

    def close(self) -> None:
        pass


# --- turning batches into exposures ----------------------------------------------------------------

def stems(filenames):
    """``poolformat.exposure_stem`` over an Arrow array of file names (stripped, as this path reads them).

    With an extension (.fits, .fits.gz, .asdf, any case) the stem is the name up to its
    last ``_`` when there is one with something before it, else the name without the
    extension; without one, the name itself. Plain string kernels: a regular expression
    with a lazy group took a second per million names.
    """
    import pyarrow.compute as pc

    lower = pc.ascii_lower(filenames)
    has_ext = pc.or_(pc.or_(pc.ends_with(lower, ".fits"), pc.ends_with(lower, ".fits.gz")),
                     pc.ends_with(lower, ".asdf"))
    parts = pc.split_pattern(filenames, "_", max_splits=1, reverse=True)
    head = parts.values.take(parts.offsets[:-1])  # the part before the last "_" (or the whole name)
    cut = pc.and_(has_ext, pc.and_(pc.equal(pc.list_value_length(parts), 2), pc.greater(pc.utf8_length(head), 0)))
    if pc.all(pc.equal(cut, has_ext)).as_py():
        return pc.if_else(cut, head, filenames)
    base = pc.replace_substring_regex(filenames, _EXTENSION, "")
    return pc.if_else(cut, head, base)


def _through_distinct(column, function, type_):
    """``function`` applied to each distinct value of ``column`` (None for a missing one), then spread."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column)
    values = pa.array([function(v) for v in encoded.dictionary.to_pylist()], type=type_)
    return pc.take(values, encoded.indices)


def _json_extra(batch, extra: list[str], plain: bool):
    """``json.dumps({name: value, ...})`` for each row, built column-wise.

    A ``plain`` source (a checked file) holds printable ASCII without double quotes, so a
    value's only character JSON escapes is the backslash; otherwise each distinct value
    goes through ``json.dumps``, as the row loader's dict does.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = batch.num_rows
    parts = []
    for k, name in enumerate(extra):
        value = batch.column(name)
        if plain:
            quoted = pc.binary_join_element_wise('"', pc.replace_substring(value, "\\", "\\\\"), '"', "")
        else:
            quoted = _through_distinct(value, lambda v: None if v is None else json.dumps(v), pa.string())
        parts.append(pa.array([("{" if k == 0 else ", ") + json.dumps(name) + ": "] * n))
        parts.append(pc.fill_null(quoted, "null"))
    parts.append(pa.array(["}"] * n))
    return pc.binary_join_element_wise(*parts, "")


class _Converter:
    """One source's batches as exposure and candidate batches (the row loader's ``RowConverter``, by column)."""

    def __init__(self, source: _Source, pool_id: int):
        self.source, self.pool_id = source, pool_id
        self.present = set(source.names)
        known = set(schema.POOL_COLUMNS)
        self.extra = [n for n in source.names if n not in known]
        self.next_line = source.header_line + 1
        self.template_lines: list[int] = []
        self.candidates: dict[str | None, list[tuple[str, str]]] = {}  # ASN_CANDIDATE text -> pairs

    def _parsed(self, text: str | None) -> int:
        pairs = self.candidates.get(text)
        if pairs is None:
            try:
                pairs = self.candidates[text] = parse_candidates(text)
            except ValueError:
                raise NotBulk("an ASN_CANDIDATE the row loader reports") from None
            if any(len(p) > MAX_CANDIDATE for pair in pairs for p in pair):
                raise NotBulk("a candidate id or type longer than its column")
        return len(pairs)

    def convert(self, batch) -> tuple:
        """(exposures, candidates) as Arrow tables, without their ids (see :func:`_with_ids`).

        The candidates' ``row`` is the position of their exposure in the batch.
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        n = batch.num_rows
        filename, exp_type = batch.column("filename"), batch.column("exp_type")
        if filename.null_count or exp_type.null_count:
            raise NotBulk("an empty FILENAME or EXP_TYPE")
        if n and (pc.max(pc.utf8_length(filename)).as_py() > MAX_FILENAME
                  or pc.max(pc.utf8_length(exp_type)).as_py() > MAX_EXP_TYPE):
            raise NotBulk("a FILENAME or EXP_TYPE longer than its column")
        upper = pc.ascii_upper(exp_type)
        lines = pa.array(np.arange(self.next_line, self.next_line + n, dtype=np.int64))
        self.next_line += n
        template = pc.equal(upper, "EXP_TYPE")
        if pc.any(template).as_py():  # set aside, as the row loader does
            self.template_lines += pc.filter(lines, template).to_pylist()
            keep = pc.invert(template)
            batch, lines, upper = batch.filter(keep), lines.filter(keep), upper.filter(keep)
            filename, n = batch.column("filename"), batch.num_rows
        columns = {
            "stem": stems(filename), "filename": filename,
            "pool_id": pa.array(np.full(n, self.pool_id, dtype=np.int64)), "source_line": lines,
            "exp_type": upper,
        }
        for column in schema.FLAG_COLUMNS:
            columns[column] = (_through_distinct(batch.column(column), flag, pa.bool_()) if column in self.present
                               else pa.nulls(n, pa.bool_()))
        for name in INSERT_COLUMNS:
            if name not in columns and name != "extra":
                columns[name] = batch.column(name) if name in self.present else pa.nulls(n, pa.string())
        columns["extra"] = (_json_extra(batch, self.extra, self.source.plain) if self.extra
                            else pa.array(["null"] * n, pa.string()))
        exposures = pa.table({c: columns[c] for c in INSERT_COLUMNS})
        return exposures, self._candidates(batch)

    def _candidates(self, batch):
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if "asn_candidate" not in self.present:
            return None
        if len(self.candidates) > 65536:  # a cache, not a record of the file: memory stays flat
            self.candidates.clear()
        encoded = pc.dictionary_encode(batch.column("asn_candidate"))
        distinct = encoded.dictionary.to_pylist()
        counts = np.array([self._parsed(text) for text in distinct] + [0], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        index = encoded.indices.fill_null(len(distinct)).to_numpy()  # a missing value: no candidate
        per_row = counts[index]
        total = int(per_row.sum())
        if total == 0:
            return None
        row_of = np.repeat(np.arange(len(index)), per_row)
        position = np.arange(total) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        flat = [pair for text in distinct for pair in self.candidates[text]]
        pick = np.repeat(starts[index], per_row) + position
        return pa.table({
            "row": pa.array(row_of, pa.int64()),
            "position": pa.array(position, pa.int64()),
            "cand_id": pc.take(pa.array([p[0] for p in flat], pa.string()), pa.array(pick)),
            "cand_type": pc.take(pa.array([p[1] for p in flat], pa.string()), pa.array(pick)),
        })


def _prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """``items`` produced in a thread of their own, ``depth`` ahead (parsing beside writing)."""
    box: queue.Queue = queue.Queue(depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                box.put((True, item))
            box.put((True, done))
        except BaseException as exc:  # handed to the consumer, raised there
            box.put((False, exc))

    worker = threading.Thread(target=produce, name="l2rules-bulk-reader", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = box.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let a blocked producer finish its put and see the stop
            try:
                box.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


# --- writing -----------------------------------------------------------------------------------

class _Rows:
    """The fetched rows of a statement run through ADBC, read as a SQLAlchemy result."""

    def __init__(self, rows: list):
        self.rows = rows

    def first(self):
        return self.rows[0] if self.rows else None

    def scalar(self):
        return self.rows[0][0] if self.rows else None

    def scalar_one(self):
        (row,) = self.rows
        return row[0]


class _AdbcConnection:
    """Enough of a SQLAlchemy connection to run Core statements through an ADBC cursor.

    Statements are compiled for the engine's dialect with their values inline, so the
    same Core code (the pool row, the rejections, the indexes) serves both paths.
    """

    def __init__(self, cursor, dialect):
        self.cursor, self.dialect = cursor, dialect

    def execute(self, statement) -> _Rows:
        sql = str(statement.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))
        self.cursor.execute(sql)
        return _Rows(self.cursor.fetchall() if self.cursor.description else [])


def _finish(conn, result: LoadResult, source: _Source, converter: _Converter, deferred: DeferredIndexes) -> None:
    deferred.restore(conn)
    result.rejections = source.template_rows(converter.template_lines)
    result.template_rows = len(result.rejections)
    result.rows += result.template_rows
    finish_load(conn, result.pool_id, source.name, source.sha256, result.rejections)


def _converted(source: _Source, converter: _Converter) -> Iterator[tuple]:
    batches = source.batches()
    try:
        for batch in batches:
            if batch.num_rows:
                yield converter.convert(batch)
    finally:
        batches.close()


def _with_ids(exposures, candidates, ids) -> tuple:
    """The batch's tables with their exposure ids; the candidates' ``row`` becomes their exposure's id."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(ids, pa.int64())
    exposures = exposures.add_column(0, "id", ids)
    if candidates is not None:
        candidates = candidates.set_column(0, "exposure_id", pc.take(ids, candidates.column("row")))
    return exposures, candidates


def _write_sqlite(database: str, source: _Source, pool_name: str, bar) -> LoadResult:
    """The SQLite load, through ADBC: run only in a process of its own (see :func:`_load_sqlite`)."""
    import adbc_driver_sqlite.dbapi as adbc
    import numpy as np
    from sqlalchemy.dialects import sqlite

    result = LoadResult(source.name, method="bulk")
    connection = adbc.connect(database, autocommit=True)
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {sqlite_busy_ms()}")
            # WAL's recommended level: a commit is durable once checkpointed, never corrupt;
            # FULL would sync the whole load's WAL at commit (a second per million rows).
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("BEGIN IMMEDIATE")
            conn = _AdbcConnection(cursor, sqlite.dialect())
            try:
                result.pool_id = upsert_pool(conn, pool_name, source.name, source.names)
                deferred = DeferredIndexes.drop(conn, postgres=False)
                # This transaction holds the write lock: the ids after the largest are free.
                first = (conn.execute(sa.select(sa.func.max(schema.exposure.c.id))).scalar() or 0) + 1
                converter = _Converter(source, result.pool_id)
                for exposures, candidates in _prefetched(_converted(source, converter)):
                    ids = np.arange(first, first + exposures.num_rows, dtype=np.int64)
                    first += exposures.num_rows
                    exposures, candidates = _with_ids(exposures, candidates, ids)
                    cursor.adbc_ingest("exposure", exposures, mode="append")
                    if candidates is not None:
                        cursor.adbc_ingest("exposure_candidate", candidates, mode="append")
                    result.rows += exposures.num_rows
                    result.inserted += exposures.num_rows
                    bar.update(exposures.num_rows, source.read)
                bar.phase("indexes")
                _finish(conn, result, source, converter, deferred)
            except adbc.Error as exc:
                _rollback(cursor)
                if storage_problem(exc):  # a full disk: the row loader would meet it too, only later
                    raise
                # Mostly a stem already in the catalog or repeated (the driver reports a UNIQUE
                # failure as an internal error); any other the row loader meets and reports too.
                message = str(exc).splitlines()[0]
                raise NotBulk(REPEATED if "UNIQUE constraint failed: exposure.stem" in message
                              else f"the database refused a batch: {message}") from None
            except BaseException:
                _rollback(cursor)
                raise
            cursor.execute("COMMIT")
        finally:
            cursor.close()
    finally:
        connection.close()
    return result


def _rollback(cursor) -> None:
    """ROLLBACK, if SQLite has not rolled back already: on a full disk (or an I/O error) it ends the
    transaction itself, and ROLLBACK then fails ("cannot rollback - no transaction is active"), which hid
    the error that mattered. Closing the connection rolls back whatever is left."""
    try:
        cursor.execute("ROLLBACK")
    except Exception as exc:  # noqa: BLE001 - the error being handled is the one to report
        log.debug("ROLLBACK after a failed bulk load: %s", exc)


def _load_sqlite(engine: sa.Engine, arguments: list[str], source: str, progress: bool) -> LoadResult:
    """Run the SQLite load in a child process, ``python -m l2rules.inventory.columnar``.

    ADBC's driver carries a SQLite library of its own. Two SQLite libraries in one
    process break each other's file locks (closing one's descriptor drops the other's
    POSIX locks; SQLite's "multiple copies" warning): reads went stale and then failed
    with "disk I/O error" when tried here. Across processes SQLite's locking is sound,
    so the writer gets a process; the load is still one transaction (the child's), and
    a child that dies leaves nothing written.
    """
    import subprocess

    command = [sys.executable, "-m", "l2rules.inventory.columnar", *arguments]
    if progress:
        command.append("--progress")
    # The child dies with this process (see _die_with_parent): its stdin is a pipe nothing is
    # written to, open until the child has answered, and it knows whose child it is.
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, _PARENT_VAR: str(os.getpid())})
    try:
        out = child.stdout.read()  # not communicate(): that would close the child's stdin at once
        child.wait()
    except BaseException:  # interrupted or terminated: the child's transaction goes with it
        child.terminate()
        child.wait()
        raise
    finally:
        child.stdin.close()
        child.stdout.close()
    if child.returncode != 0:
        raise L2RulesError(f"{source}: the bulk loader failed (exit {child.returncode}; its error is above)")
    answer = json.loads(out.strip().splitlines()[-1])
    if "declined" in answer:
        raise NotBulk(answer["declined"])
    if "os_error" in answer:  # (cli.main says it in one line, exit 2, as any file the system refuses)
        raise OSError(*answer["os_error"])
    if "error" in answer:
        if problem := storage_problem(answer["error"]):
            raise DatabaseError(f"{source}: {problem}")
        if "database is locked" in answer["error"]:
            raise DatabaseError(f"{source}: the catalog is locked by another process (it waited the busy "
                                "timeout); nothing was loaded: load again when it is free")
        raise L2RulesError(f"{source}: the bulk loader failed: {answer['error']}")
    template = [TemplateRow(source, line, "EXP_TYPE", TemplateRow.REASON, raw)
                for line, raw in answer["template_rows"]]
    result = LoadResult(source, pool_id=answer["pool_id"], rows=answer["rows"], inserted=answer["inserted"],
                        template_rows=len(template), rejections=template, method="bulk")
    if result.loaded >= TRUNCATE_WAL_AFTER:
        truncate_wal(engine)
    return result


_NEW_IDS = ("SELECT min(v), max(v), CASE WHEN max(v) - min(v) + 1 = count(*) THEN NULL "
            f"ELSE array_agg(v ORDER BY v) END FROM ({PG_NEW_IDS}) AS drawn")


def _postgres_batches(engine: sa.Engine, source: _Source | _ArrowSource, converter: _Converter) -> Iterator[tuple]:
    """In the reader thread: each batch with its ids, formatted as CSV for ``COPY``.

    The ids are drawn on a connection of the thread's own (a sequence is outside any
    transaction, so the load's own sees them the same), which leaves the load's
    connection nothing to do but ``COPY``: the server copies one batch while the next
    is parsed and formatted.
    """
    import io

    import numpy as np
    from pyarrow import csv as pacsv

    options = pacsv.WriteOptions(include_header=False)

    def formatted(data) -> tuple[list[str], memoryview]:
        buffer = io.BytesIO()
        pacsv.write_csv(data, buffer, options)
        return data.column_names, buffer.getbuffer()

    with engine.connect() as drawing, drawing.connection.dbapi_connection.cursor() as cursor:
        for exposures, candidates in _converted(source, converter):
            if not exposures.num_rows:  # a batch of template rows only: no ids to draw, nothing to copy
                continue
            # Sent back as a range, unless another session drew numbers in between.
            cursor.execute(_NEW_IDS, (exposures.num_rows,))
            low, high, drawn = cursor.fetchone()
            ids = np.arange(low, high + 1, dtype=np.int64) if drawn is None else drawn
            exposures, candidates = _with_ids(exposures, candidates, ids)
            yield (exposures.num_rows, formatted(exposures),
                   None if candidates is None else formatted(candidates))


def _load_postgres(engine: sa.Engine, source: _Source | _ArrowSource, pool_name: str, progress: bool) -> LoadResult:
    bar = progress_bar(progress, source.name, source.size)
    result = LoadResult(source.name, method="bulk")

    def copy(cursor, table: str, data: tuple) -> None:
        columns, text = data
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as out:
            out.write(text)

    try:
        with engine.begin() as conn:
            result.pool_id = upsert_pool(conn, pool_name, source.name, source.names)
            # The unique stem too: one sort at the end instead of an index insert per row; a repeated
            # stem then fails there, and the row loader takes the file.
            deferred = DeferredIndexes.drop(conn, postgres=True, unique=True)
            converter = _Converter(source, result.pool_id)
            with conn.connection.dbapi_connection.cursor() as cursor:
                for n, exposures, candidates in _prefetched(_postgres_batches(engine, source, converter)):
                    copy(cursor, "exposure", exposures)
                    if candidates is not None:
                        copy(cursor, "exposure_candidate", candidates)
                    result.rows += n
                    result.inserted += n
                    bar.update(n, source.read)
            bar.phase("indexes")
            _finish(conn, result, source, converter, deferred)
    except (sa.exc.IntegrityError, engine.dialect.dbapi.IntegrityError) as exc:  # SQLAlchemy's, or COPY's own
        error = getattr(exc, "orig", exc)
        raise NotBulk(REPEATED if "uq_exposure_stem" in str(error) else f"the database refused it: {error}") from None
    except engine.dialect.loaded_dbapi.Error as exc:  # COPY's own (a full disk)
        raise driver_error(engine, exc) from exc
    finally:
        bar.close()
        source.close()
    return result


#: Files smaller than this take the row loader under ``method="auto"``: starting the bulk
#: path (a process on SQLite) costs more than it saves on some 20,000 rows.
BULK_MIN_BYTES = 8 << 20


def _check_engine(engine: sa.Engine) -> None:
    if engine.dialect.name == "sqlite":
        if not engine.url.database or engine.url.database == ":memory:":
            raise NotBulk("an in-memory SQLite database (the bulk path writes from a process of its own)")
        if importlib.util.find_spec("adbc_driver_sqlite") is None:
            raise NotBulk("adbc-driver-sqlite is not installed")
    elif engine.dialect.name != "postgresql":
        raise NotBulk(f"no bulk path for {engine.dialect.name}")


def load_file(engine: sa.Engine, path: Path, pool_name: str, *, progress: bool, force: bool = False) -> LoadResult:
    """Load a pool file on the bulk path, in one transaction, or raise :class:`NotBulk`.

    Without ``force``, a file under :data:`BULK_MIN_BYTES` is declined.
    """
    if not force and path.stat().st_size < BULK_MIN_BYTES:
        raise NotBulk(f"a file under {BULK_MIN_BYTES >> 20} MB")
    _check_engine(engine)
    if engine.dialect.name == "sqlite":
        return _load_sqlite(engine, ["load", engine.url.database, str(path), pool_name], str(path), progress)
    if engine.dialect.name == "postgresql":
        return _load_postgres(engine, _Source(path), pool_name, progress)
    raise NotBulk(f"no bulk path for {engine.dialect.name}")


#: Set by :func:`_load_sqlite` in the writer's environment: the pid of the load that started it.
_PARENT_VAR = "L2RULES_BULK_PARENT"
#: The writer's exit code when it ends because its parent is gone (nobody reads it).
_ORPHANED = 70


def _die_with_parent() -> None:
    """The writer must not outlive the load that started it.

    A writer left running after ``kill -9`` of its ``load`` or ``run`` went on and
    committed the whole load, which the killed command never reported. On Linux the
    kernel kills the child when its parent dies (``PR_SET_PDEATHSIG``); if the parent
    died before that was set, ``getppid()`` no longer names it. Everywhere, a thread
    reads stdin, a pipe from the parent that nothing writes to: it ends (EOF) when the
    parent's end closes, which the kernel does when the parent exits, however it exits.
    Only for a writer started by :func:`_load_sqlite`; run by hand, none of this applies.
    """
    parent = os.environ.get(_PARENT_VAR)
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(parent):  # the parent died before the writer started watching
        os._exit(_ORPHANED)

    def watch() -> None:
        # The file descriptor, not sys.stdin: a daemon thread blocked inside a buffered reader
        # holds its lock, and the interpreter aborts at exit when it cannot take that lock.
        while os.read(0, 4096):  # b"" at EOF: the parent's end of the pipe has closed
            pass
        os._exit(_ORPHANED)  # at once: no cleanup that could commit the open transaction

    threading.Thread(target=watch, name="l2rules-bulk-parent-watch", daemon=True).start()


def load_table(engine: sa.Engine, table, name: str, pool_name: str, sha256: str, *, progress: bool,
               force: bool = False) -> LoadResult:
    """Load a DataFrame's text table (``poolformat.frame_table``) on this path, or raise :class:`NotBulk`.

    On PostgreSQL the table is copied from this process; on SQLite the writer process
    reads it from a temporary Arrow IPC file (memory-mapped: no copy, no Python file
    object for pyarrow to read from). Without ``force``, a table of less text than
    :data:`BULK_MIN_BYTES` is declined.
    """
    if not force and table.nbytes < BULK_MIN_BYTES:
        raise NotBulk(f"a DataFrame under {BULK_MIN_BYTES >> 20} MB of text")
    _check_engine(engine)
    if engine.dialect.name == "postgresql":
        return _load_postgres(engine, _ArrowSource(table, name, sha256), pool_name, progress)
    import tempfile

    import pyarrow as pa

    _ArrowSource(table, name, sha256)  # its header declines here, before a file is written
    handle, ipc = tempfile.mkstemp(prefix="l2rules-frame-", suffix=".arrow")
    os.close(handle)
    try:
        with pa.ipc.new_file(ipc, table.schema) as writer:
            writer.write_table(table, max_chunksize=FRAME_BATCH)
        return _load_sqlite(engine, ["load-arrow", engine.url.database, ipc, pool_name, name, sha256], name, progress)
    finally:
        os.unlink(ipc)


def main(argv: list[str] | None = None) -> int:
    """The SQLite writer's process: ``python -m l2rules.inventory.columnar load DATABASE FILE POOL [--progress]``,
    or ``load-arrow DATABASE IPC_FILE POOL SOURCE SHA256`` for a DataFrame's text table.

    Prints one JSON line: the pool id and rows written, or why the file was declined.
    """
    args = sys.argv[1:] if argv is None else argv
    _die_with_parent()
    database, path, pool_name = args[1:4]
    try:
        if args[0] == "load-arrow":
            import pyarrow as pa

            # Memory-mapped by pyarrow itself: no Python file object for its threads to call back into.
            table = pa.ipc.open_file(pa.memory_map(path)).read_all()
            source = _ArrowSource(table, args[4], args[5])
        else:
            source = _Source(Path(path))
        bar = progress_bar("--progress" in args, source.name, source.size)
        try:
            result = _write_sqlite(database, source, pool_name, bar)
        finally:
            bar.close()
            source.close()
        answer = {"pool_id": result.pool_id, "rows": result.rows, "inserted": result.inserted,
                  "template_rows": [[e.line, e.raw] for e in result.rejections]}
    except NotBulk as exc:
        answer = {"declined": str(exc)}
    except OSError as exc:  # a file the system refuses (permissions ...): raised again by the parent, as its own
        if exc.filename is None:
            lines = str(exc).strip().splitlines()
            answer = {"error": f"{type(exc).__name__}: {lines[-1] if lines else ''}"}
        else:
            answer = {"os_error": [exc.errno, exc.strerror, os.fspath(exc.filename)]}
    except Exception as exc:  # noqa: BLE001 - said in one line by the parent; the transaction is rolled back
        lines = str(exc).strip().splitlines()
        # (the driver's line that says the disk is full, when one does: not the query it quotes after it)
        said = next((line for line in lines if storage_problem(line)), lines[-1] if lines else "")
        answer = {"error": f"{type(exc).__name__}: {said}"}
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
