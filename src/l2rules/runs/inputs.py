"""A run's inputs: the paths it reads, its output checked, the inputs loaded and counted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import schema
from ..inventory import InventoryError, load, stdin, unchanged_pool

log = logging.getLogger("l2rules.runs")  # (one logger for the package, as before the split)


@dataclass
class _Input:
    path: Path
    pool_id: int | None = None
    skipped: bool = False
    counts: dict = field(default_factory=dict)


def input_paths(pools: Iterable[str | Path] | None = None, inventory_dir: str | Path | None = None) -> list[Path]:
    """The inputs a run reads: the POOLs given (pool files, or FITS files, directories or patterns),
    then every ``*.csv`` of ``inventory_dir`` (sorted)."""
    paths = [Path(p) for p in (pools or [])]
    if inventory_dir is not None:
        directory = Path(inventory_dir)
        if not directory.is_dir():
            raise InventoryError(str(directory), None, None, "no such directory")
        paths += sorted(p for p in directory.glob("*.csv") if p.is_file())
    from ..inventory import fits

    for path in paths:
        # FITS input (a directory, a glob pattern, .fits files) is read as one pool each, as `load` does
        if not stdin.is_stdin(path) and not path.is_file() and not fits.is_fits_path(path):
            from ..inventory.poolformat import not_a_file

            raise InventoryError(str(path), None, None, not_a_file(path))
    return paths


def _check_output(output: str | None) -> None:
    if output is None:
        return
    # A missing directory is created when the output is written (as `asn --output` does): check now,
    # before the run, that the nearest one that exists is a directory it can be created in.
    parent = Path(output.replace("{run_id}", "0")).resolve().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InventoryError(output, None, None, f"{parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise InventoryError(output, None, None, f"output directory {parent} is not writable")


def _versions(conn: sa.Connection, pool_id: int) -> dict[int, int]:
    """The versions of a pool's current exposures, by id: the loader raises one when a reload changes it."""
    e = schema.exposure
    return dict(conn.execute(sa.select(e.c.id, e.c.version).where(e.c.pool_id == pool_id,
                                                                 e.c.withdrawn_at.is_(None))).all())


def _withdrawn_by_load(conn: sa.Connection, pool_id: int) -> int:
    """How many exposures the pool's latest load withdrew (the load marks them with its time)."""
    e, p = schema.exposure, schema.pool
    this_load = sa.select(p.c.loaded_at).where(p.c.id == pool_id).scalar_subquery()
    return conn.execute(sa.select(sa.func.count()).where(e.c.pool_id == pool_id,
                                                         e.c.withdrawn_at == this_load)).scalar_one()


def _load_inputs(engine: Engine, paths: list[Path], skip_bad: bool, progress: bool | None) -> tuple[list[_Input], dict]:
    p = schema.pool
    counts = {"exposures_seen": 0, "exposures_new": 0, "exposures_changed": 0, "exposures_withdrawn": 0,
              "exposures_taken_over": 0, "rows_rejected": 0}
    inputs = []
    from ..inventory import fits

    for path in paths:
        item = _Input(path)
        # FITS input has no one file to digest: it is always read (the loader versions what changed)
        name = fits.pool_name(str(path)) if fits.is_fits_source(str(path)) else stdin.resolved(path).name
        unchanged = unchanged_pool(engine, path, skip_bad=skip_bad, whole=False)
        with engine.connect() as conn:
            known = conn.execute(sa.select(p.c.id, p.c.n_exposures).where(p.c.name == name)).first()
            before = _versions(conn, known.id) if known and unchanged is None else None
        if unchanged is not None:
            item.pool_id, item.skipped = known.id, True
            counts["exposures_seen"] += known.n_exposures
            log.info("%s: unchanged since its last load, skipped", path)
            inputs.append(item)
            continue
        result = load(engine, path, skip_bad=skip_bad, progress=progress)
        item.pool_id = result.pool_id
        changed = withdrawn = 0
        if before:
            with engine.connect() as conn:
                after = _versions(conn, result.pool_id)
                withdrawn = _withdrawn_by_load(conn, result.pool_id)
            changed = sum(1 for i, version in after.items() if i in before and version != before[i])
        counts["exposures_seen"] += result.loaded
        counts["exposures_new"] += result.inserted
        counts["exposures_changed"] += changed
        counts["exposures_withdrawn"] += withdrawn
        counts["exposures_taken_over"] += sum(result.taken_over.values())
        counts["rows_rejected"] += result.rejected
        log.info("%s: %d exposures, %d new, %d changed, %d withdrawn, %d taken over from other pools, %d rows "
                 "rejected", path, result.loaded, result.inserted, changed, withdrawn,
                 sum(result.taken_over.values()), result.rejected)
        inputs.append(item)
    return inputs, counts
