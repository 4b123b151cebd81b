"""Inventories from FITS files: each file's primary header made a pool row, as the pipeline's ``asn_make_pool`` does.

The rules are those of ``jwst.associations.mkpool`` (jwst 3.0.0), read from its source:

- a column for every keyword of any file's primary header (``COMMENT``, ``HISTORY`` and
  blank keywords aside), lower case, sorted; a file without a keyword has ``null`` there;
- values as Python's ``str()`` of astropy's value (``True``, ``1``, ``1.5``, text as is);
- the columns no header holds are set for every file, over any header value:
  ``asn_candidate`` the observation's candidate ``[('oOBSERVTN', 'observation')]`` plus
  the given ones, ``dms_note`` (default empty), ``is_imprt`` (``f``), ``pntgtype``
  (``science``), ``mostilno`` and ``dithptin`` (``1``), ``targetid`` a count of the
  distinct TARGNAME values in file order (1 for the first target, 2 for the next...).

One difference: mkpool takes FILENAME from the path it was given; here it is the
header's FILENAME keyword (the exposure's identity in the catalog must not depend on
the directory a file is read from), and a file without one is a bad file, as is a file
without EXP_TYPE, a file that is not FITS, and a truncated one. A bad file is one
error naming the file and the keyword; ``--skip-bad`` keeps it as a rejection.

Only primary headers are read (no data), plain or gzip-compressed (``.fits.gz``).
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..config import L2RulesError, require
from .poolformat import InventoryError, SourceTable, control_error, exposure_stem, parse_candidates

log = logging.getLogger(__name__)

#: File name endings read as FITS.
SUFFIXES = (".fits", ".fits.gz", ".fit", ".fts")
#: Header keywords that make no column (as mkpool).
IGNORE_KEYS = frozenset({"", "COMMENT", "HISTORY"})
#: The columns headers lack, and mkpool's values for them (asn_candidate and targetid are computed).
NON_HEADER_DEFAULTS = {"asn_candidate": None, "dms_note": "", "is_imprt": "f", "pntgtype": "science",
                       "targetid": "1", "mostilno": "1", "dithptin": "1"}
#: Keywords every file must have.
REQUIRED_KEYWORDS = ("FILENAME", "EXP_TYPE")
#: A missing value as the pipeline's pools write it.
NULL = "null"


class FitsFileError(InventoryError):
    """A file that gives no pool row: the message is one line naming the file and the keyword.

    ``source`` is the load's source (a rejection is stored under it, and replaced by its
    next load); the file is named in ``reason`` and kept in ``raw``.
    """

    def __init__(self, source: str, line: int | None, path: str, keyword: str | None, reason: str):
        super().__init__(source, line, keyword, f"{path}: {reason}", raw=path)
        self.path = path
        self.args = (f"{path}: " + (f"{keyword}: " if keyword else "") + reason,)


@dataclass
class Options:
    """Values of the non-header columns (mkpool's ``--asn-candidate``, ``--dms-note``, ``--is-imprt``,
    ``--pntgtype``)."""

    asn_candidate: str | list | None = None
    dms_note: str = ""
    is_imprt: str = "f"
    pntgtype: str = "science"

    def candidates(self) -> list[tuple[str, str]]:
        if self.asn_candidate is None:
            return []
        if isinstance(self.asn_candidate, str):
            try:
                return [tuple(p) for p in parse_candidates(self.asn_candidate)] if self.asn_candidate.strip() else []
            except ValueError as exc:
                raise L2RulesError(f"--asn-candidate: {exc}") from None
        return [(str(a), str(b)) for a, b in self.asn_candidate]


class FileGroup(os.PathLike):
    """FITS files named one by one (a shell's ``DIR/*.fits``) as one source: one pool, named after their directory.

    A path-like object whose path is that directory, so that code naming a pool after its
    source's path (``Path(source).stem``) names it as for the directory itself.
    """

    def __init__(self, files: Iterable[str | os.PathLike]):
        self.files = [str(f) for f in files]

    def __fspath__(self) -> str:
        return source_name(self.files)

    def __str__(self) -> str:
        return f"{len(self.files)} FITS files in {source_name(self.files)}"

    def __repr__(self) -> str:
        return f"FileGroup({self.files!r})"


def group_files(sources: list) -> list:
    """``sources`` with its FITS files (not directories or patterns) made one :class:`FileGroup`, in the first's place.

    What the command line does with its arguments: ``l2rules worklist DIR/*.fits`` is one pool.
    """
    files = [s for s in sources if isinstance(s, (str, os.PathLike)) and not isinstance(s, FileGroup)
             and str(s).lower().endswith(SUFFIXES) and Path(s).is_file()]
    if len(files) < 2:
        return list(sources)
    group = FileGroup(files)
    out = []
    for s in sources:
        if s is files[0]:
            out.append(group)
        elif not any(s is f for f in files):
            out.append(s)
    return out


def is_fits_path(text: str | os.PathLike) -> bool:
    """True when ``text`` names FITS input: a FITS file name, a directory, or a glob pattern."""
    s = str(text)
    return (s.lower().endswith(SUFFIXES) or Path(s).is_dir()
            or (glob.has_magic(s) and not Path(s).exists()))


def is_fits_source(source) -> bool:
    """True for a path, glob or list of them that :func:`paths` reads (a pool or CSV file is not one)."""
    if isinstance(source, FileGroup):
        return True
    if isinstance(source, (list, tuple)):
        return bool(source) and all(isinstance(s, (str, os.PathLike)) and is_fits_path(s) for s in source)
    return isinstance(source, (str, os.PathLike)) and is_fits_path(source)


def paths(sources: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The FITS files of files, directories (their FITS files, not recursively) and glob patterns.

    Each directory's and pattern's files sorted by name; a file listed twice counts once.
    A named file that does not exist, or a directory or pattern with no FITS file, is an error.
    """
    if isinstance(sources, FileGroup):
        sources = sources.files
    elif isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    found: list[Path] = []
    for source in sources:
        s = str(source)
        p = Path(s)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.name.lower().endswith(SUFFIXES) and f.is_file())
            if not files:
                raise InventoryError(s, None, None, "no FITS file (*.fits, *.fits.gz) in this directory")
        elif p.is_file():
            files = [p]
        elif glob.has_magic(s):
            files = sorted(Path(f) for f in glob.glob(s) if f.lower().endswith(SUFFIXES) and Path(f).is_file())
            if not files:
                raise InventoryError(s, None, None, "no FITS file (*.fits, *.fits.gz) matches this pattern")
        else:
            from .poolformat import not_a_file

            raise InventoryError(s, None, None, not_a_file(p) if p.exists() else "no such file or directory")
        found += files
    seen: set[Path] = set()
    return [f for f in found if not (f.resolve() in seen or seen.add(f.resolve()))]


def source_name(sources) -> str:
    """The load's source (kept with the pool and its rejections): a file or directory as given (without a
    trailing ``/``), else the directory of a pattern's or a list's files, so that ``DIR``, ``'DIR/*.fits'``
    and a shell's ``DIR/*.fits`` are the same source."""
    if isinstance(sources, FileGroup):
        sources = sources.files
    elif isinstance(sources, (str, os.PathLike)):
        p = Path(sources)
        return str(p) if p.is_dir() or p.is_file() else str(p.parent)
    places = {str(Path(s)) if Path(s).is_dir() else str(Path(s).parent) for s in sources}
    return ", ".join(sorted(places))


def pool_name(sources) -> str:
    """The default pool name of FITS input: a directory's name, a file's name, else the directory the files share."""
    if isinstance(sources, FileGroup):
        sources = sources.files
    elif isinstance(sources, (str, os.PathLike)):
        p = Path(sources)
        if p.is_dir() or p.is_file():
            return p.resolve().name if p.is_dir() else p.name
        sources = [sources]
    parents = {Path(str(s)).resolve().parent if not Path(str(s)).is_dir() else Path(str(s)).resolve()
               for s in sources}
    if len(parents) == 1:
        return parents.pop().name
    raise L2RulesError("FITS files from several directories: name the pool (name=...)")


# --- reading headers ---------------------------------------------------------------------------

def _astropy():
    return require("astropy.io.fits", "fits", "reading FITS files")


def read_header(path: Path, source: str, line: int | None = None) -> dict[str, str] | FitsFileError:
    """The primary header of ``path`` as {KEYWORD: text}, or the error that names the file and the keyword."""
    fits = _astropy()
    name = str(path)
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
            raw.seek(0)
            fh = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
            try:
                start = fh.read(80)
            except (OSError, EOFError) as exc:  # a gzip stream that is not one
                return FitsFileError(source, line, name, None, f"not a readable gzip file ({exc})")
            if not start:
                return FitsFileError(source, line, name, None, "empty file: no primary header")
            if not start.startswith(b"SIMPLE  ="):
                return FitsFileError(source, line, name, "SIMPLE",
                                     "not a FITS file: it does not start with a SIMPLE card")
            rest = fh.read(2800)
            chunks = [start, rest]
            # Read 2880-byte blocks until the END card (a header is a few blocks; data is never read).
            while True:
                data = b"".join(chunks)
                if _has_end(data):
                    break
                more = fh.read(2880)
                if not more:
                    return FitsFileError(source, line, name, "END",
                                         "truncated: the primary header has no END card")
                chunks = [data, more]
            if len(data) < _end_block(data):
                return FitsFileError(source, line, name, "END",
                                     f"truncated: the primary header's last 2880-byte block is cut short "
                                     f"({len(data)} bytes)")
    except (OSError, EOFError) as exc:
        return FitsFileError(source, line, name, None, f"cannot be read: {exc.__class__.__name__}: {exc}")
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-standard cards: read as astropy reads them
            header = fits.Header.fromfile(io.BytesIO(data[:_end_block(data)]), padding=False)
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds for a bad header
        return FitsFileError(source, line, name, None, f"the primary header cannot be read: {exc}")
    values: dict[str, str] = {}
    for keyword, value in header.items():
        if keyword in IGNORE_KEYS:
            continue
        values[keyword] = str(value)
    for keyword in REQUIRED_KEYWORDS:
        if keyword not in values:
            return FitsFileError(source, line, name, keyword, f"no {keyword} keyword in the primary header")
        if not values[keyword].strip():
            return FitsFileError(source, line, name, keyword, f"{keyword} is empty in the primary header")
    return values


def _has_end(data: bytes) -> bool:
    return _end_block(data) > 0


def _end_block(data: bytes) -> int:
    """The length of the header's blocks up to its END card; 0 without one."""
    for offset in range(0, len(data) - 79, 80):
        if data[offset:offset + 8] == b"END     ":
            return -(-(offset + 80) // 2880) * 2880
    return 0


def versions(engine, stems: list[str]) -> dict[str, int]:
    """{stem: version} of the catalog's exposures among ``stems`` (to tell how many a load changed)."""
    import sqlalchemy as sa

    from .. import schema

    e = schema.exposure
    found: dict[str, int] = {}
    with engine.connect() as conn:
        for start in range(0, len(stems), 900):
            query = sa.select(e.c.stem, e.c.version).where(e.c.stem.in_(stems[start:start + 900]))
            found.update((stem, version) for stem, version in conn.execute(query))
    return found


# --- pool rows -----------------------------------------------------------------------------------

@dataclass
class FitsPool:
    """The pool of some FITS files: columns, one row (dict of text) or error per file, in file order."""

    source: str
    columns: list[str]
    items: list[dict[str, str] | FitsFileError] = field(default_factory=list)
    #: The file of each item: line N of :meth:`table` is file N-2.
    files: list[str] = field(default_factory=list)

    def named(self, error: InventoryError) -> InventoryError:
        """The loader's error on a line of :meth:`table` (``DIR:5: column EXP_TYPE: ...``) as the error of
        the FITS file that line is, named by its own name and the header keyword, as a bad file is."""
        if isinstance(error, FitsFileError) or error.source != self.source or error.line is None \
                or not 2 <= error.line < len(self.files) + 2:
            return error
        return FitsFileError(error.source, error.line, self.files[error.line - 2], error.column, error.reason)

    @property
    def errors(self) -> list[FitsFileError]:
        return [i for i in self.items if isinstance(i, FitsFileError)]

    def stems(self) -> list[str]:
        """The exposures' identities (FILENAME stems) of the good files."""
        return [exposure_stem(i["filename"]) for i in self.items if isinstance(i, dict)]

    def values(self, row: dict[str, str]) -> list[str]:
        return [row.get(c, NULL) for c in self.columns]

    def table(self) -> SourceTable:
        """The pool as the loader's source: the file at position N is line N+1 (line 1 the header)."""
        digest = hashlib.sha256("|".join(self.columns).encode())
        for item in self.items:
            text = item.path if isinstance(item, FitsFileError) else "|".join(self.values(item))
            digest.update(b"\n" + text.encode())
        header = list(self.columns)

        def fields(number: int, item) -> list[str] | InventoryError:
            if isinstance(item, InventoryError):
                return item
            values = self.values(item)
            bad = control_error(self.source, number, header, values, "|")
            return bad if bad is not None else values

        def rows() -> Iterator[tuple[int, list[str] | InventoryError]]:
            for number, item in enumerate(self.items, start=2):
                yield number, fields(number, item)

        def reread(numbers: set[int]) -> dict[int, list[str]]:
            found = {}
            for n in numbers:
                if 2 <= n < len(self.items) + 2 and isinstance(self.items[n - 2], dict):
                    found[n] = self.values(self.items[n - 2])
            return found

        return SourceTable(self.source, header, 1, rows(), sha256=digest.hexdigest(), reread=reread)

    def write(self, output) -> int:
        """Write the pool as the pipeline's pool files are written: ``|``-separated, a header of column names.

        Bad files are left out (they have no row). Returns the number of rows written.
        """
        rows = [i for i in self.items if isinstance(i, dict)]
        lines = ["|".join(self.columns)] + ["|".join(_cell(v) for v in self.values(r)) for r in rows]
        text = "\n".join(lines) + "\n"
        if output in (None, "-"):
            import sys

            sys.stdout.write(text)
        else:
            from ..outputs import write_text

            write_text(output, text)  # all or nothing, as every output file
        return len(rows)


def _cell(value: str) -> str:
    """A value as astropy's ``ascii`` writer puts it in a ``|``-separated pool (as mkpool's pools are written):
    quoted only when it holds the delimiter or a quote (an empty value and blanks stay as they are)."""
    if "|" in value or '"' in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def make_pool(sources, *, source: str | None = None, options: Options | None = None,
              files: list[Path] | None = None) -> FitsPool:
    """Read the primary header of each FITS file of ``sources`` and make the pool's rows, as mkpool does."""
    options = options or Options()
    files = paths(sources) if files is None else files
    source = source or source_name(sources)
    extra = options.candidates()
    fixed = {"dms_note": options.dms_note, "is_imprt": options.is_imprt, "pntgtype": options.pntgtype,
             "mostilno": NON_HEADER_DEFAULTS["mostilno"], "dithptin": NON_HEADER_DEFAULTS["dithptin"]}
    columns = set(NON_HEADER_DEFAULTS) | {k.lower() for k in REQUIRED_KEYWORDS}
    items: list[dict[str, str] | FitsFileError] = []
    targets: dict[str, int] = {}
    stems: dict[str, tuple[str, dict]] = {}  # exposure -> (its first file, its row)
    for number, path in enumerate(files, start=2):
        header = read_header(path, source, number)
        if isinstance(header, FitsFileError):
            items.append(header)
            continue
        row = {k.lower(): v for k, v in header.items()}
        row.update(fixed)
        observation = header.get("OBSERVTN")
        candidates = ([(f"o{observation}", "observation")] if observation is not None else []) + extra
        row["asn_candidate"] = str(candidates) if candidates else NULL
        target = header.get("TARGNAME", NULL)
        row["targetid"] = str(targets.setdefault(target, len(targets) + 1))
        stem = exposure_stem(row["filename"])
        first = stems.get(stem)
        if first is not None and first[1] != row:  # identical copies are one exposure, as repeated pool rows
            items.append(FitsFileError(source, number, str(path), "FILENAME",
                                       f"duplicate exposure {row['filename']} (also in {first[0]}) with different "
                                       "header values"))
            continue
        stems.setdefault(stem, (str(path), row))
        columns.update(row)
        items.append(row)
    return FitsPool(source, sorted(columns), items, [str(path) for path in files])
