"""Previews: pool files a command answers about without storing them.

``worklist POOL``, ``asn POOL``, ``explain --pool FILE`` and ``impact ... POOL`` write nothing but their
output, as jwst's asn_generate does: a pool already in the catalog and unchanged since its load is read
there (its stored answers serve); otherwise the pools are loaded into a scratch catalog, an SQLite file in
a temporary directory at the same head revision (the rules are the migrations': the same at every head),
removed afterwards. ``store=True`` loads them into the catalog instead, as ``load`` does.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from .._lazy import pandas as pd
from ..config import DB, drop_engine, get_engine
from ..migrate import require_migrated, sqlite_file, upgrade
from . import loaded_pool, unchanged_pool  # the package, not this module, holds the loaders

log = logging.getLogger(__name__)


@dataclass
class Preview:
    """The catalog a command reads and its pools' ids there, each loaded when it is asked for (pools may
    share FILENAME stems: each is evaluated right after its load, before the next takes them over)."""

    engine: sa.Engine
    #: None when no sources were given: the command covers the catalog's pools.
    pool_ids: Iterator[int] | None
    #: True when the pools were loaded into a scratch catalog, not the user's.
    scratch: bool


@contextmanager
def previewed(db: DB, sources: Iterable[str | Path | pd.DataFrame] | None, *, store: bool = False,
              skip_bad: bool = False, progress: bool | None = None) -> Iterator[Preview]:
    """The catalog to answer about ``sources`` from, leaving ``db`` as it was unless ``store``; with no
    ``sources`` (None), ``db`` itself, read."""
    if sources is None:
        yield Preview(require_migrated(db), None, False)
        return
    sources = list(sources)
    if store:
        engine = require_migrated(db, create=True)
        yield Preview(engine, (loaded_pool(engine, s, skip_bad=skip_bad, progress=progress) for s in sources),
                      False)
        return
    engine = existing_catalog(db)
    if engine is not None:
        known = [unchanged_pool(engine, source, skip_bad=skip_bad) for source in sources]
        if None not in known:
            yield Preview(engine, iter(known), False)  # type: ignore[arg-type]
            return
    with tempfile.TemporaryDirectory(prefix="l2rules-preview-") as directory:
        scratch = get_engine(f"sqlite:///{Path(directory) / 'preview.db'}")
        log.info("evaluating in a scratch catalog (%s): the catalog is not changed", directory)
        try:
            upgrade(scratch)
            yield Preview(scratch, (loaded_pool(scratch, s, skip_bad=skip_bad, progress=progress)
                                    for s in sources), True)
        finally:
            drop_engine(scratch)


def existing_catalog(db: DB) -> sa.Engine | None:
    """The engine of ``db`` when it holds a catalog (checked to be at the head); None for an embedded
    file that does not exist yet (a preview creates nothing)."""
    engine = get_engine(db)
    path = sqlite_file(engine)
    if path is not None and (not path.exists() or path.stat().st_size == 0):
        return None
    return require_migrated(engine)
