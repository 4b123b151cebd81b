"""Outputs: DataFrames written as a terminal table, CSV, JSON or Parquet."""

from __future__ import annotations

import csv
import datetime as dt
import errno
import gc
import json
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TextIO

import sqlalchemy as sa

from ._lazy import pandas as pd
from .config import L2RulesError


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (restored as it was after it).

    For loops that build millions of cycle-free objects: each collection would walk every
    container made so far again, which costs a fifth of a load and made a 7.4-million-row
    work list quadratic.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


FORMATS = ("table", "csv", "json", "jsonl", "parquet")
#: Formats written row chunk by row chunk, with no DataFrame (see ``write_result``).
STREAMED_FORMATS = ("csv", "parquet")
#: The format an output file's suffix implies.
OUTPUT_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet", ".pq": "parquet",
                   ".txt": "table"}


class OutputError(L2RulesError):
    """An output whose format cannot be told, or is told two ways (bad input: exit 2)."""

    exit_code = 2


class PathError(OutputError):
    """A file or directory l2rules reads or writes that the system refuses (no permission, not a directory, a
    symbolic link where none is followed, disk full ...): bad input, exit 2, one line naming it."""


def path_error(exc: OSError, path: str | os.PathLike | None = None) -> PathError:
    """The one message for an OSError on a file the user named (every reader and writer's, and cli.main's for
    any that reaches it): the path, then the system's reason."""
    name = os.fspath(path) if path is not None else exc.filename
    why = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        why += "; nothing was written (the file is as it was)"
    return PathError(f"{name}: {why}" if name is not None else why)


# --- output files: all or nothing, never through a symbolic link ---------------------------------------
# An output file is written under a temporary name in its directory, then renamed over its name: a
# process killed (kill -9), a full disk or a failed query leaves the file as it was, never half written.
# The path the user names is followed as the system follows it up to its last component; that last
# component (the file, or asn's directory) and everything l2rules makes or enters under it is opened
# relative to its directory's descriptor without following a symbolic link: a link planted there (a
# pool's own subdirectory, a file name) is refused, never written through.

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


#: A temporary output file's name (:meth:`OutputDirectory._temporary`): ``.NAME.PID-SERIAL.tmp``.
_LEFTOVER = re.compile(r"^\..+\.(\d+)-\d+\.tmp$")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class OutputDirectory:
    """A directory open by descriptor, made if missing, that files are written in all or nothing
    (:meth:`write_bytes`, :meth:`open`); :meth:`sub` enters (makes) a subdirectory the same way."""

    def __init__(self, path: str | os.PathLike, *, follow: bool = False, _fd: int | None = None):
        """``follow``: ``path`` may itself be a symbolic link (a file's directory: the user's path, as its
        parents); without, it is refused as any link under it."""
        self.path = Path(path)
        self.fd = _open_directory(self.path, follow) if _fd is None else _fd
        self._serial = 0
        self._prefix = os.path.join(str(self.path), "")  # (a file's path: a string join, not a Path per file)
        self._sweep()

    def _sweep(self) -> None:
        """Remove the temporary files a killed l2rules left here (kill -9 gives it no time to): those of
        a process that is no longer running. A live writer's are its own."""
        try:
            names = [entry.name for entry in os.scandir(self.fd) if entry.name.endswith(".tmp")]
        except OSError:
            return
        for name in names:
            match = _LEFTOVER.match(name)
            if match is None or _running(int(match.group(1))):
                continue
            try:
                os.unlink(name, dir_fd=self.fd)
            except OSError:
                pass

    def close(self) -> None:
        if getattr(self, "fd", -1) >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OutputDirectory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # (a directory left open by an error between two pools)
        try:
            self.close()
        except OSError:
            pass

    def sub(self, name: str) -> OutputDirectory:
        """The subdirectory ``name`` (one component), made if missing; a symbolic link there is refused."""
        return OutputDirectory(self.path / name, _fd=_enter(self.fd, name, self.path / name))

    def write_bytes(self, name: str, data: bytes | memoryview) -> str:
        """``data`` as the file ``name`` (one component), all or nothing; returns its path."""
        with self._all_or_nothing(name) as descriptor:
            unwritten = memoryview(data)
            try:
                while unwritten:
                    unwritten = unwritten[os.write(descriptor, unwritten):]
            finally:
                os.close(descriptor)
        return self._prefix + name

    @contextmanager
    def open(self, name: str, mode: str = "w", **options) -> Iterator[IO]:
        """A file object (``open``'s ``mode`` and options) that becomes the file ``name`` (one component)
        when the block ends without an error; after one, nothing is left (an OSError: :class:`PathError`)."""
        with self._all_or_nothing(name) as descriptor, open(descriptor, mode, **options) as fh:
            yield fh

    @contextmanager
    def _all_or_nothing(self, name: str) -> Iterator[int]:
        """A temporary file's descriptor, renamed to ``name`` when the block ends without an error; after one,
        removed (an OSError: :class:`PathError` naming ``name``)."""
        tmp, descriptor = self._temporary(name)
        try:
            yield descriptor
            self._replace(tmp, name)
        except BaseException as exc:
            self._discard(tmp)
            if isinstance(exc, OSError):
                raise path_error(exc, self.path / name) from None
            raise

    def _temporary(self, name: str) -> tuple[str, int]:
        # hidden and not *_asn.json: a reader of the directory never takes a left-over one for an output
        self._serial += 1
        tmp = f".{name}.{os.getpid()}-{self._serial}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        try:
            try:
                return tmp, os.open(tmp, flags, 0o644, dir_fd=self.fd)
            except FileExistsError:  # a process of the same pid, killed: its leftover
                os.unlink(tmp, dir_fd=self.fd)
                return tmp, os.open(tmp, flags, 0o644, dir_fd=self.fd)
        except OSError as exc:
            raise path_error(exc, self.path / name) from None

    def _replace(self, tmp: str, name: str) -> None:
        try:
            mode = os.lstat(name, dir_fd=self.fd).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISLNK(mode):
            raise PathError(f"{self.path / name}: a symbolic link, and a symbolic link is not followed "
                            "(nothing is written through one): remove it")
        if mode is not None and stat.S_ISREG(mode) and stat.S_IMODE(mode) != 0o644:
            os.chmod(tmp, stat.S_IMODE(mode), dir_fd=self.fd)  # a file replaced keeps its permissions
        os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def _discard(self, tmp: str) -> None:
        try:
            os.unlink(tmp, dir_fd=self.fd)
        except OSError:
            pass


def _open_directory(path: Path, follow: bool = False) -> int:
    """A descriptor of directory ``path``, made (with its parents) if missing: its parents followed as the
    system follows them, ``path`` itself not if it is a symbolic link (unless ``follow``)."""
    name = path.name
    if follow or name in ("", ".", ".."):  # (`.`, `/`, `a/..`: no last component that could be a link)
        return _made(path)
    parent_fd = _made(path.parent)
    try:
        return _enter(parent_fd, name, path)
    finally:
        os.close(parent_fd)


def _made(path: Path) -> int:
    """A descriptor of directory ``path`` (followed), made with its parents if missing."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDONLY | _DIRECTORY)
    except OSError as exc:
        for each in (path, *path.parents):  # the one in the way: a file where a directory must be
            if each.exists() and not each.is_dir():
                raise PathError(f"{each}: not a directory") from None
        raise path_error(exc, exc.filename or path) from None


def _enter(parent_fd: int, name: str, path: Path) -> int:
    """A descriptor of the directory ``name`` in ``parent_fd``, made if missing, never through a link."""
    if "/" in name or name in ("", ".", ".."):
        raise PathError(f"{path}: not a name of a directory in {path.parent}")
    try:
        try:
            os.mkdir(name, 0o777, dir_fd=parent_fd)
        except FileExistsError:
            pass
        return os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=parent_fd)
    except OSError as exc:
        try:
            mode = os.lstat(name, dir_fd=parent_fd).st_mode
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode):
            raise PathError(f"{path}: a symbolic link to a directory, and a symbolic link is not followed "
                            "(nothing is written through one): remove it") from None
        if mode and not stat.S_ISDIR(mode):
            raise PathError(f"{path}: not a directory") from None
        raise path_error(exc, path) from None


@contextmanager
def output_file(path: str | os.PathLike, mode: str = "w", **options) -> Iterator[IO]:
    """The file object for an output file ``path`` (``open``'s mode and options), all or nothing, not through a
    symbolic link (:class:`OutputDirectory`); its directory made if missing. Every ``--output`` goes here."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise PathError(f"{path}: a directory, not a file")
    # (the file's directory is the user's path: followed, as a parent is; the file itself is not)
    with OutputDirectory(path.parent, follow=True) as directory:
        with directory.open(path.name, mode, **options) as fh:
            yield fh


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """``text`` as the output file ``path``, all or nothing (:func:`output_file`)."""
    with output_file(path, "w", encoding=encoding, newline="") as fh:
        fh.write(text)


def output_format(output: str | Path, fmt: str | None = None) -> str:
    """The format every ``--output`` is written in, one rule for all: ``fmt`` when given, else the one its
    suffix implies (:data:`OUTPUT_SUFFIXES`); a suffix that implies none needs ``fmt``, and one that implies
    another format than ``fmt`` is refused (``w.xlsx`` is not written as a text table, nor ``r.dat`` as CSV)."""
    if fmt is not None and fmt not in FORMATS:
        raise OutputError(f"--output {output}: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    suffix = Path(str(output)).suffix.lower()
    implied = OUTPUT_SUFFIXES.get(suffix)
    if fmt is None and implied is None:
        raise OutputError(f"--output {output}: {'its suffix ' + suffix if suffix else 'no suffix'} names no format "
                          f"({', '.join(OUTPUT_SUFFIXES)}); give --format ({', '.join(FORMATS)})")
    if fmt is not None and implied is not None and implied != fmt:
        raise OutputError(f"--output {output} is {implied} by its suffix, and --format says {fmt}: give one")
    chosen = fmt or implied
    assert chosen is not None  # (one of them, by the checks above)
    return chosen


def _jsonable(value, missing=()):
    if value is None or (isinstance(value, float) and value != value) or any(value is m for m in missing):
        return None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def records(frame: pd.DataFrame) -> list[dict]:
    missing = (pd.NA, pd.NaT)  # looked up once: each lookup on the lazy module is an import call
    return [{k: _jsonable(v, missing) for k, v in row.items()} for row in frame.to_dict("records")]


def render(frame: pd.DataFrame, fmt: str = "table", width: int | None = None) -> str:
    """The frame as text in ``fmt`` (all formats but parquet). ``width``: a table that fits that many
    characters a line (:func:`terminal_width`), numbers right-aligned; None: every cell whole."""
    if fmt == "table":
        if frame.empty:
            return "(no rows)\n"
        from tabulate import tabulate

        shown = _iso_times(frame)
        numeric = [pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
                   for dtype in shown.dtypes]
        shown = shown.astype(object).where(shown.notna(), "")
        if width is None:
            return tabulate(shown, headers="keys", tablefmt="simple", showindex=False, disable_numparse=True) + "\n"
        headers, cells, left_out = _fitted([str(c) for c in shown.columns],
                                           [[str(v) for v in row] for row in shown.itertuples(index=False)], width)
        text = tabulate(cells, headers=headers, tablefmt="simple", disable_numparse=True,
                        colalign=["right" if n else "left" for n in numeric[:len(headers)]]) + "\n"
        if left_out:  # said, never dropped without a word
            import textwrap

            text += textwrap.fill(f"({len(left_out)} more columns: {', '.join(left_out)}; --columns chooses them, "
                                  "--format csv or json shows every one)", width) + "\n"
        return text
    if fmt == "csv":
        return _iso_times(frame).to_csv(index=False)
    if fmt == "json":
        return json.dumps(records(frame), indent=1) + "\n"
    if fmt == "jsonl":  # JSON Lines: one object a line, for line-by-line tools
        return "".join(json.dumps(record) + "\n" for record in records(frame))
    raise L2RulesError(f"format {fmt!r} cannot be printed; choose one of {', '.join(FORMATS)}")


#: The narrowest a column is cut to when a table must fit the terminal (or its header's width, up to
#: :data:`HEADER_KEPT` characters: a header cut shorter names nothing).
MIN_COLUMN, HEADER_KEPT = 6, 14


def terminal_width(stream: TextIO) -> int | None:
    """The width a table printed on ``stream`` must fit when ``stream`` is a terminal: ``$COLUMNS``, else the
    terminal's; None otherwise (piped, redirected: every cell whole, for the tools that read it)."""
    import shutil

    isatty = getattr(stream, "isatty", None)
    return shutil.get_terminal_size().columns if isatty is not None and isatty() else None


def _fitted(headers: list[str], rows: list[list[str]], width: int) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers and cells cut (with an ellipsis) so that a "simple" table (two spaces between columns) is at
    most ``width`` wide: the widest column is narrowed first, none below its floor; the columns that still do
    not fit are left out from the right (returned third, by name)."""
    # tabulate makes a column at least its header and two spaces wide (its MIN_PADDING): so do these widths
    widths = [max([len(h) + 2, *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    floors = [min(w, max(MIN_COLUMN, min(len(h), HEADER_KEPT) + 2)) for w, h in zip(widths, headers)]
    caps = list(widths)
    kept = len(headers)
    while kept > 1 and sum(floors[:kept]) + 2 * (kept - 1) > width:
        kept -= 1
    caps, floors = caps[:kept], floors[:kept]
    room = width - 2 * (kept - 1)
    while sum(caps) > room:
        widest = max(range(kept), key=lambda i: caps[i] - floors[i])
        if caps[widest] <= floors[widest]:
            break  # (one column wider than the terminal alone)
        caps[widest] -= 1  # (one character at a time: the widest column's share of the excess)

    def cut(text: str, cap: int) -> str:
        return text if len(text) <= cap else text[:cap - 1] + "\u2026"

    return ([cut(h, cap - 2) for h, cap in zip(headers, caps)],
            [[cut(v, cap) for v, cap in zip(row, caps)] for row in rows], headers[kept:])


def _iso_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Times as ISO 8601 text (``2026-01-02T03:04:05.123456+00:00``, as JSON writes them), NaT as missing."""
    times = [name for name, dtype in frame.dtypes.items() if isinstance(dtype, pd.DatetimeTZDtype)]
    if not times:
        return frame
    frame = frame.copy()
    for name in times:
        frame[name] = frame[name].map(lambda v: None if v is pd.NaT else v.isoformat()).astype(object)
    return frame


def write(frame: pd.DataFrame, fmt: str = "table", output: str | Path | None = None,
          stream: TextIO | None = None, columns: list[str] | None = None) -> None:
    """Write ``frame`` to ``output`` (a path: all or nothing, :func:`output_file`) or to ``stream`` (stdout by
    default); a table printed on a terminal fits it (:func:`terminal_width`). ``columns``: only those, in that
    order (an unknown one is refused, naming the frame's)."""
    if columns:
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise OutputError(f"--columns: no column {', '.join(unknown)}; the columns are "
                              f"{', '.join(map(str, frame.columns))}")
        frame = frame[list(columns)]
    if fmt not in FORMATS:
        raise L2RulesError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        if output is None:
            raise L2RulesError("--format parquet needs --output PATH")
        with output_file(output, "wb") as fh:
            frame.to_parquet(fh, index=False)
        return
    if output is None:
        stream = stream or sys.stdout
        stream.write(render(frame, fmt, terminal_width(stream) if fmt == "table" else None))
        return
    write_text(output, render(frame, fmt))


def to_frame(result: sa.engine.Result, columns: list[str] | None = None, types: dict | None = None) -> pd.DataFrame:
    """A query result as a DataFrame of Python objects (None stays None, text stays object dtype), or with
    ``types`` (name -> SQL type) each named column typed by :func:`dtype_of` as it is made.

    Built column by column from chunks of rows, so that a work list of millions of rows
    never exists as a list of row objects besides the frame; a typed column replaces its objects
    before the next is made (typing a whole object frame afterwards copied its block: 100 MB
    more at the peak of a 300,000-row list).
    """
    keys = list(result.keys())
    names = columns if columns is not None else keys
    if len(set(keys)) != len(keys) or not set(names) <= set(keys):
        rows = result.mappings().all()
        frame = pd.DataFrame(rows, columns=names, dtype=object)
        return typed(frame, types, copy=False) if types else frame
    import numpy as np  # with pandas, imported only when a frame is made

    picks = [keys.index(name) for name in names]
    if types is not None:
        return _typed_frame(result, picks, names, [dtype_of(name, types[name]) if name in types else None
                                                   for name in names])
    values: list[list] = [[] for _ in names]
    # Equal values share one object: a work list repeats its pool, exp_type, rule ... on every row.
    shared: list[dict | None] = [{} for _ in names]
    with gc_paused():  # the column lists grow to millions of items
        _fill_columns(result, picks, values, shared)
    data = {}
    for j, name in enumerate(names):
        column, values[j] = values[j], []  # each list freed once its array is made
        array = np.empty(len(column), dtype=object)
        array[:] = column
        del column
        data[name] = array
        del array
    # copy=False: the frame keeps these arrays (a copy was 65 MB more at the peak of a 741,560-row list).
    return pd.DataFrame(data, columns=names, dtype=object, copy=False)


def _typed_frame(result: sa.engine.Result, picks: list[int], names: list[str], dtypes: list[str | None]):
    """The typed frame, each chunk of rows converted as it comes: no column ever exists as a list of
    Python objects for all its rows (at 1M rows those lists, then their conversion, were the peak:
    543 MB against 60 MB for the frame)."""
    import numpy as np  # with pandas, imported only when a frame is made
    import pandas

    pieces: list[list] = [[] for _ in names]
    for chunk in result.partitions(_CHUNK):
        columns_of_chunk = list(zip(*chunk))
        for j, i in enumerate(picks):
            array = np.empty(len(chunk), dtype=object)
            array[:] = columns_of_chunk[i]
            dtype = dtypes[j]
            pieces[j].append(array if dtype is None else _as_dtype(pandas.Series(array, dtype=object, copy=False),
                                                                   dtype))
        del columns_of_chunk, chunk
    data = {}
    for j, name in enumerate(names):
        column, pieces[j] = pieces[j], []  # each column's pieces freed once joined
        dtype = dtypes[j]
        if dtype is None:
            data[name] = pandas.Series(np.concatenate(column) if column else np.empty(0, dtype=object), dtype=object)
        elif not column:
            data[name] = _as_dtype(pandas.Series([], dtype=object), dtype)
        elif dtype == "category":  # the categories of every chunk, sorted, as _as_dtype makes them
            categories = pandas.Index(sorted({v for piece in column for v in piece.cat.categories}))
            codes = np.concatenate([piece.cat.set_categories(categories).cat.codes.to_numpy() for piece in column])
            data[name] = pandas.Series(pandas.Categorical.from_codes(codes, categories=categories))
        else:
            data[name] = pandas.concat(column, ignore_index=True)
        del column
    return pandas.DataFrame(data, columns=names, copy=False)


# --- dtypes: every frame the library returns is typed from its columns' SQL types ---------------------
# The same frame on SQLite and PostgreSQL, and the one its Parquet file reads back as: the dtype comes
# from the column's SQLAlchemy type (of the SELECT, or of the schema column a built frame's column holds),
# never from what a backend's driver happened to return.

#: The pandas dtype of a column of each SQL type: the first entry whose type the column's type is.
DTYPES: tuple[tuple[type, str], ...] = (
    (sa.Boolean, "boolean"),  # nullable booleans: SQLite's 0/1 and PostgreSQL's bools alike; NULL is <NA>
    (sa.Integer, "Int64"),  # nullable integers (BigInteger and SmallInteger too): NULL is <NA>, never a float
    (sa.DateTime, "datetime64[ns, UTC]"),  # every stored time is UTC; SQLite's offset-less ones are read as UTC
    (sa.Date, "object"),  # a calendar day stays a datetime.date (no time of day, no zone); Parquet date32
    (sa.Float, "Float64"),
    (sa.String, "string"),  # Text and String: pandas' nullable string dtype, NULL is <NA>
)
#: Text columns whose values are few and known (JWST exposure types, association types, member types,
#: specials, run statuses, instruments, kinds of change): categorical, categories the sorted values present
#: (a missing value is NaN there, as pandas has it). Nothing else is; ';'-joined sets of them are values too.
CATEGORICAL = frozenset({
    "exp_type", "exptype", "special", "asn_type", "table_asn_type", "pipeline_asn_type", "candidate_type",
    "status", "instrument", "change",
    *(f"{c}_{side}" for c in ("exptype", "asn_type", "role") for side in ("from", "to")),
})


def dtype_of(name: str, sql_type) -> str | None:
    """The pandas dtype of column ``name`` of SQL type ``sql_type`` ("category" for :data:`CATEGORICAL`
    text); None for a type the policy leaves as Python objects (JSON, NullType ...)."""
    sql_type = sa.types.to_instance(sql_type)
    for kind, dtype in DTYPES:
        if isinstance(sql_type, kind):
            return "category" if dtype == "string" and name in CATEGORICAL else dtype
    return None


def typed(frame: pd.DataFrame, types: dict, *, copy: bool = True) -> pd.DataFrame:
    """``frame`` with each column named in ``types`` (name -> SQL type) given its dtype by :func:`dtype_of`;
    other columns as they are. Missing values (None, NaN, NaT) become the dtype's own missing value.

    ``copy=False`` converts ``frame`` itself, column by column, each object column freed as its typed one
    replaces it (a work list of millions of rows never exists twice)."""
    if copy:
        frame = frame.copy(deep=False)
    for name in list(frame.columns):
        dtype = dtype_of(name, types[name]) if name in types else None
        if dtype is not None:
            frame[name] = _as_dtype(frame[name], dtype)
    return frame


def _as_dtype(column: pd.Series, dtype: str) -> pd.Series:
    import numpy as np  # with pandas, imported only when a frame is made
    import pandas

    # every missing value (NaN, NA, NaT) is None (pandas-stubs types na_value without None)
    values = column.to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
    index = column.index
    if dtype == "boolean":  # SQLite gives 0/1, PostgreSQL True/False
        return pandas.Series(pandas.array(values, dtype="boolean"), index=index)
    if dtype == "Int64":
        return pandas.Series(pandas.array(values, dtype="Int64"), index=index)
    if dtype.startswith("datetime64"):  # datetimes with or without offset, or ISO 8601 text
        stamps = pandas.to_datetime(pandas.Series(values, index=index, dtype=object), utc=True, format="ISO8601")
        return stamps.astype(dtype)
    if dtype == "object":  # dates: datetime.date, None when missing
        return pandas.Series([v if v is None or type(v) is dt.date else _as_date(v) for v in values],
                             index=index, dtype=object)
    if dtype == "category":  # categories sorted, of pandas' default text dtype (what a Parquet file reads back)
        uniques = [v for v in pandas.unique(values) if v is not None]
        if not all(type(v) is str for v in uniques):  # text columns hold text; anything else as its text
            values = np.array([None if v is None else str(v) for v in values], dtype=object)
            uniques = list({v for v in values if v is not None})
        return pandas.Series(pandas.Categorical(values, categories=pandas.Index(sorted(uniques))), index=index)
    return pandas.Series(pandas.array(values, dtype=dtype), index=index)


def _as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])


def column_types(query: sa.Select) -> dict:
    """The SQL type of each column a SELECT gives, by name."""
    return {column.key: column.type for column in query.selected_columns}


def query_frame(conn: sa.Connection, query: sa.Select, columns: list[str] | None = None,
                types: dict | None = None) -> pd.DataFrame:
    """The rows of ``query`` as a typed DataFrame (:func:`to_frame`, then :func:`typed` by the query's
    column types; ``types`` overrides some)."""
    # stream_results: a server-side cursor on PostgreSQL, so the rows come chunk by chunk as the frame is made
    # (psycopg's client cursor held all of a 1M-row work list first: 624 MB at the peak, 356 MB on SQLite)
    return to_frame(conn.execute(query.execution_options(stream_results=True)), columns,
                    {**column_types(query), **(types or {})})


def _fill_columns(result: sa.engine.Result, picks: list[int], values: list[list], shared: list[dict | None]) -> None:
    for chunk in result.partitions(_CHUNK):
        columns_of_chunk = list(zip(*chunk))
        for j, i in enumerate(picks):
            chunk_values: Sequence = columns_of_chunk[i]
            seen = shared[j]
            if seen is not None:
                # Only text is shared (1, 1.0 and True are equal keys but not the same value).
                if all(type(v) is str or v is None for v in chunk_values):
                    chunk_values = list(map(seen.setdefault, chunk_values, chunk_values))
                    if len(seen) > _SHARED_MAX:
                        shared[j] = None
                else:
                    shared[j] = None
            values[j].extend(chunk_values)


_CHUNK = 20_000
_SHARED_MAX = 100_000


def write_result(result: sa.engine.Result | Iterable[sa.engine.Result], columns: list[str], fmt: str,
                 output: str | Path | None = None, stream: TextIO | None = None, booleans: tuple[str, ...] = (),
                 integers: tuple[str, ...] = ()) -> int:
    """Write a query result (or several, one after the other, each read before the next is asked for) as
    CSV or Parquet straight from its rows, chunk by chunk; returns the row count.

    Memory stays that of one chunk however long the result: a million-row work list
    written this way never exists as a DataFrame. The CSV is the one ``write`` makes
    from a DataFrame (empty for NULL, True/False for ``booleans`` columns).
    """
    if fmt not in STREAMED_FORMATS:
        raise L2RulesError(f"format {fmt!r} is not streamed; choose one of {', '.join(STREAMED_FORMATS)}")
    flags = {j for j, name in enumerate(columns) if name in booleans}

    def chunks() -> Iterator[Sequence]:
        for each in ([result] if isinstance(result, sa.engine.Result) else result):
            keys = list(each.keys())
            picks = [keys.index(name) for name in columns]
            reordered = picks != list(range(len(keys)))  # (other columns left out, or in another order)
            for chunk in each.partitions(_CHUNK):
                rows = [tuple(row[i] for i in picks) for row in chunk] if reordered else chunk
                if flags:
                    rows = [tuple(bool(v) if j in flags and v is not None else v for j, v in enumerate(row))
                            for row in rows]
                yield rows

    if fmt == "parquet":
        return _write_parquet(chunks(), columns, output, booleans, integers)
    if output is None:
        return _write_csv(chunks(), columns, stream or sys.stdout)
    with output_file(output, "w", newline="") as fh:
        return _write_csv(chunks(), columns, fh)


def _write_csv(chunks, columns: list[str], fh: IO[str]) -> int:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for rows in chunks:
        writer.writerows(rows)
        count += len(rows)
    return count


def _write_parquet(chunks, columns: list[str], output: str | Path | None, booleans, integers) -> int:
    if output is None:
        raise L2RulesError("--format parquet needs --output PATH")
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.bool_() if name in booleans else pa.int64() if name in integers else pa.string())
                        for name in columns])
    count = 0
    with output_file(output, "wb") as fh, pq.ParquetWriter(fh, schema) as writer:
        for rows in chunks:
            writer.write_table(pa.Table.from_arrays(
                [pa.array(list(col), type=field.type) for col, field in zip(zip(*rows), schema)], schema=schema))
            count += len(rows)
    return count
