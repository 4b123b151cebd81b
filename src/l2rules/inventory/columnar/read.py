"""The bulk path's reading: a pool file checked block by block and parsed by pyarrow, or a DataFrame's
text table read as the row loader reads it; both as Arrow batches of text. A source not for this
path raises :class:`NotBulk`.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..poolformat import (
    BOM,
    CONTROL,
    NULL_FORMS,
    REQUIRED_COLUMNS,
    TemplateRow,
    column_names,
    find_header,
    line_body,
    split_header,
)

#: Bytes a file may hold for this path: printable ASCII but the double quote, and line ends (LF, CRLF).
_ALLOWED = bytes(range(0x20, 0x7F)).replace(b'"', b"") + b"\n\r"
#: The name the reader gives the empty field after a trailing delimiter (a header name is stripped:
#: it never starts with a space).
_TRAILING = " trailing delimiter"
#: Bytes read (and parsed) at a time: about 2,800 rows of a 57-column pool. Peak memory grew
#: with it (a million rows: 310 MB with 1 MB blocks, 490 MB with 4, 690 MB with 8), time did not.
BLOCK = 1 << 20


class NotBulk(Exception):
    """This file is not one for the bulk path; the reason says why. The row loader takes it."""


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
