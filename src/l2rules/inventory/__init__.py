"""Inventory: loading exposure inventories (association pools, CSV files, DataFrames, FITS files).

The package, by responsibility:

- ``poolformat``: reading the pool format (header, NULLs, flags, candidates) and the
  errors that name file, line and column;
- ``rows``: the row path, line by line in Python: the reference;
- ``columnar``: the columnar path for large, clean inputs (pyarrow, ``COPY`` / ADBC
  ingest in a writer process of its own on SQLite);
- ``fits``: FITS files' primary headers made pool rows, as the pipeline's ``asn_make_pool``;
- ``store``: the pool row, deferred indexes, ids, the end of a load, WAL truncation.

A load is one transaction: a file with a bad row changes nothing, unless ``skip_bad``
is set, in which case each bad row is stored in ``load_rejection`` with its reason and
the rest is loaded. Exposures are identified by their FILENAME stem, so loading a pool
again updates its rows in place.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa

from .. import console, schema
from .._lazy import loaded
from .._lazy import pandas as pd
from ..config import DB, L2RulesError
from ..migrate import require_migrated
from . import fits, stdin
from .poolformat import (
    FLAG_FALSE,
    FLAG_NULL,
    NULLS,
    REQUIRED_COLUMNS,
    InventoryError,
    TemplateRow,
    exposure_stem,
    frame_table,
    parse_candidates,
    read_arrow,
    read_file,
    table_digest,
)
from .rows import load_rows
from .store import LoadResult, exposures, keep_statistics, rejections

__all__ = [
    "FLAG_FALSE", "FLAG_NULL", "METHODS", "NULLS", "REQUIRED_COLUMNS", "BulkDeclined", "InventoryError",
    "LoadResult", "TemplateRow",
    "exposure_stem", "exposures", "load", "load_many", "parse_candidates", "rejections",
    "loaded_pool", "unchanged_pool",
]

log = logging.getLogger(__name__)

METHODS = ("auto", "bulk", "rows")


class BulkDeclined(L2RulesError):
    """``method="bulk"`` was asked for a source the bulk path does not take (the reason says why): bad input for
    that method, exit 2; ``auto`` would have loaded it line by line."""

    exit_code = 2


def load(db: DB, source: str | Path | pd.DataFrame | list[str | Path], *, name: str | None = None,
         skip_bad: bool = False, progress: bool | None = None, method: str = "auto",
         fits_options: "fits.Options | None" = None) -> LoadResult:
    """Load one pool file, CSV file, DataFrame or set of FITS files into the catalog database, in one transaction.

    FITS input (a ``.fits`` / ``.fits.gz`` file, a directory of them, a glob pattern, or a
    list of these) is one pool: each file's primary header a row, made as the pipeline's
    ``asn_make_pool`` makes it (see ``inventory.fits``; ``fits_options`` sets the columns
    headers lack). Its default name is the directory's name (a single file's name).

    ``-`` reads standard input (see ``inventory.stdin``): the pool ``stdin``, its errors naming ``<stdin>``,
    loaded line by line.

    ``name`` names the pool (default: the file's name; for a DataFrame ``dataframe-``
    and the start of its content's SHA-256, so each different DataFrame is a pool of its
    own and the same one loaded again updates it in place). ``method``: ``"auto"`` tries
    the bulk path (``columnar``) for a large file or DataFrame and gives it to the row
    loader when the bulk path declines it; ``"rows"`` uses the row loader only;
    ``"bulk"`` raises when the bulk path declines.
    """
    if method not in METHODS:
        raise L2RulesError(f"unknown load method {method!r}; choose one of {', '.join(METHODS)}")
    engine = require_migrated(db, create=True)
    result = _load(engine, source, name, skip_bad, progress, method, fits_options)
    keep_statistics(engine, ("pool", "exposure", "exposure_candidate", "load_rejection"),
                    result.inserted + result.updated)
    return result


def _load(engine, source, name, skip_bad, progress, method, fits_options) -> LoadResult:
    show = console.progress(progress)
    if fits.is_fits_source(source):
        if method == "bulk":
            raise BulkDeclined(f"{source}: the bulk path declines this file: it takes pool and CSV files and "
                               "DataFrames, not FITS input")
        pool = fits.make_pool(source, options=fits_options)
        stems = pool.stems()
        before = fits.versions(engine, stems)
        # The rows path: it keeps a bad file as a rejection (or fails the load) as a pool's bad row.
        try:
            result = load_rows(engine, pool.table(), name or fits.pool_name(source), skip_bad=skip_bad,
                               progress=show)
        except InventoryError as exc:
            raise pool.named(exc) from None
        after = fits.versions(engine, stems)
        result.changed = sum(1 for stem, version in after.items() if stem in before and before[stem] != version)
        return result
    if fits_options is not None:
        raise L2RulesError(f"{source}: options of the FITS columns given for input that is not FITS files")
    frames = loaded("pandas")  # a DataFrame can only come from an imported pandas
    declined = None
    if frames is not None and isinstance(source, frames.DataFrame):
        text = frame_table(source, name or "dataframe")
        sha256 = table_digest(text)
        pool_name = name or f"dataframe-{sha256[:16]}"
        if method != "rows":
            from . import columnar  # imported here: see below

            try:
                return columnar.load_table(engine, text, pool_name, pool_name, sha256, progress=show,
                                           force=method == "bulk")
            except columnar.NotBulk as exc:
                if method == "bulk":
                    raise BulkDeclined(f"{pool_name}: the bulk path declines this DataFrame: {exc}") from None
                declined = str(exc)
                log.info("%s: loaded line by line: %s", pool_name, exc)
        table = read_arrow(text, pool_name, sha256)
    else:
        piped = stdin.is_stdin(source)
        if piped and method == "bulk":
            raise BulkDeclined(f"{stdin.LABEL}: the bulk path declines standard input: it reads named files "
                               "(standard input goes to the row loader)")
        pool_name = name or (stdin.NAME if piped else Path(source).name)
        if method != "rows" and not piped and Path(source).is_file():
            # Imported here, not at the top: only a load that may take the bulk path needs it.
            from . import columnar

            try:
                return columnar.load_file(engine, Path(source), pool_name, progress=show, force=method == "bulk")
            except columnar.NotBulk as exc:
                if method == "bulk":
                    raise BulkDeclined(f"{source}: the bulk path declines this file: {exc}") from None
                declined = str(exc)
                log.info("%s: loaded line by line: %s", source, exc)
        table = read_file(source)
    return load_rows(engine, table, pool_name, skip_bad=skip_bad, progress=show, declined=declined)


def _file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as a load records it in ``pool.sha256``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unchanged_pool(engine: sa.Engine, source: str | Path | pd.DataFrame, *, skip_bad: bool = False,
                   whole: bool = True) -> int | None:
    """The id of the pool a file was last loaded as, when loading it again would change nothing: the same
    bytes as that load, every exposure of that load still in it (none withdrawn, none taken over by a
    later pool with the same stems) and, unless ``skip_bad``, no bad row rejected by it (loading again
    without ``skip_bad`` refuses the file). ``None`` otherwise, and for FITS input (read each time) and
    DataFrames. ``whole=False`` leaves out the exposures test: for runs, whose pools sharing stems must not
    take them back and forth at every rerun (a stem stays with the pool that last brought it).

    Reading a million-line pool again only to find it unchanged took the row loader minutes.
    """
    if not isinstance(source, (str, Path)) or fits.is_fits_source(str(source)):
        return None
    path = stdin.resolved(source)  # (standard input: its copy, a file named as its pool)
    if not path.is_file():
        return None
    p, e, r = schema.pool, schema.exposure, schema.load_rejection
    with engine.connect() as conn:
        known = conn.execute(sa.select(p.c.id, p.c.source, p.c.sha256, p.c.n_exposures)
                             .where(p.c.name == path.name)).first()
        if known is None or known.sha256 != _file_digest(path):
            return None
        if whole and conn.execute(sa.select(sa.func.count()).where(
                e.c.pool_id == known.id, e.c.withdrawn_at.is_(None))).scalar_one() != known.n_exposures:
            return None
        # a source's rejections are its latest load's; template leftovers are kept with or without skip_bad
        if not skip_bad and conn.execute(sa.select(sa.exists().where(
                r.c.source == known.source, r.c.reason != TemplateRow.REASON))).scalar_one():
            return None
    return known.id


def loaded_pool(engine: sa.Engine, source: str | Path | pd.DataFrame, *, skip_bad: bool = False,
                progress: bool | None = None) -> int:
    """The id of ``source``'s pool, loading it first unless it is unchanged since its last load
    (:func:`unchanged_pool`). For the commands that take pool files and work on them right after:
    ``asn``, ``worklist``, ``impact``, ``explain``."""
    pool_id = unchanged_pool(engine, source, skip_bad=skip_bad)
    if pool_id is not None:
        log.info("%s: unchanged since its last load, not loaded again", source)
        return pool_id
    return load(engine, source, skip_bad=skip_bad, progress=progress).pool_id


def load_many(db: DB, sources: Iterable[str | Path], **options) -> list[LoadResult]:
    """:func:`load` for each source, in turn (a transaction each)."""
    return [load(db, s, **options) for s in sources]

