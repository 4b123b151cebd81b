"""Shared helpers of the run tests: synthetic pools, rule changes, invariant checks."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from l2rules import get_engine, schema, worklist

#: (EXP_TYPE, what the pipeline makes of it at the head) for the synthetic pools.
MIX = [
    ("NRC_IMAGE", "image2"), ("MIR_IMAGE", "image2"), ("MIR_LRS-FIXEDSLIT", "spec2"), ("NIS_IMAGE", "image2"),
    ("FGS_DARK", None),       # a published rule that says not processed; no association
    ("NRC_FUTURE", None),     # no rule: unmatched
]
#: The columns the pipeline reads to make a Level 2b association of each exposure (candidate, target,
#: instrument, detector, filter) come after LAMP, so a line starts "FILENAME|EXP_TYPE|PROGRAM|OBS_NUM|".
HEADER = "FILENAME|EXP_TYPE|PROGRAM|OBS_NUM|IS_PSF|BKGDTARG|IS_IMPRT|TSOVISIT|LAMP|ASN_CANDIDATE|TARGETID|" \
         "INSTRUME|DETECTOR|FILTER"
_INSTRUMENT = {"NRC": ("NIRCAM", "NRCA1"), "MIR": ("MIRI", "MIRIMAGE"), "NIS": ("NIRISS", "NIS"),
               "FGS": ("FGS", "GUIDER1")}


def pool_line(prefix: str, i: int, lamp: str = "null") -> str:
    """Line ``i`` of a synthetic pool: exposure ``<prefix>_<i>``, its type from :data:`MIX`, one observation
    candidate per 100 exposures."""
    exp_type = MIX[i % len(MIX)][0]
    instrument, detector = _INSTRUMENT.get(exp_type[:3], ("null", "null"))
    return (f"{prefix}_{i:06d}_nrca1_uncal.fits|{exp_type}|{prefix}|{i // 100:03d}|F|F|F|F|{lamp}|"
            f"[('o{i // 100:03d}', 'observation')]|1|{instrument}|{detector}|F200W")


def write_pool(path: Path, n: int, prefix: str = "jw9", start: int = 0, lamp: str = "null") -> Path:
    """A pool of ``n`` exposures cycling through :data:`MIX`, with unique file names."""
    lines = [HEADER, *(pool_line(prefix, i, lamp) for i in range(start, start + n))]
    path.write_text("\n".join(lines) + "\n")
    return path


def selected(db: str) -> set[str]:
    """The file names of the current work list, as `l2rules worklist` computes it (the pipeline's answer)."""
    return set(worklist(db)["filename"])


def head_catalog_revision(db: str) -> str:
    """The latest catalog version: what runs record and stored answers are at."""
    with get_engine(db).connect() as conn:
        return conn.execute(sa.select(schema.catalog_version.c.revision)
                            .order_by(schema.catalog_version.c.seq.desc()).limit(1)).scalar_one()


def item_rows(db: str) -> list[tuple]:
    e, wi = schema.exposure, schema.work_item
    with get_engine(db).connect() as conn:
        return conn.execute(sa.select(e.c.filename, wi.c.catalog_revision, wi.c.run_id, wi.c.asn_type,
                                      wi.c.exposure_version, wi.c.withdrawn_by)
                            .join(e, e.c.id == wi.c.exposure_id).order_by(wi.c.id)).all()


def assert_exactly_once(db: str) -> None:
    """Every exposure of the work list has exactly one work item for its current version at the head revision:
    none missing, none twice; no item of the work list is withdrawn, and no withdrawn exposure's item is open."""
    rows = item_rows(db)
    keys = [(f, rev, version) for f, rev, _run, _asn, version, _by in rows]
    assert len(keys) == len(set(keys)), "a work item was made twice"
    with get_engine(db).connect() as conn:
        dupes = conn.execute(sa.text(
            "SELECT exposure_id, catalog_revision, exposure_version, count(*) FROM work_item "
            "GROUP BY exposure_id, catalog_revision, exposure_version HAVING count(*) > 1")).all()
        running = conn.execute(sa.text("SELECT count(*) FROM run WHERE status = 'running'")).scalar_one()
        behind = conn.execute(sa.text(
            "SELECT count(*) FROM exposure e JOIN work_item w ON w.exposure_id = e.id "
            "WHERE w.id = (SELECT max(w2.id) FROM work_item w2 WHERE w2.exposure_id = e.id) "
            "AND e.withdrawn_at IS NULL AND (w.exposure_version <> e.version OR w.withdrawn_at IS NOT NULL)"
        )).scalar_one()
        open_withdrawn = conn.execute(sa.text(
            "SELECT count(*) FROM exposure e JOIN work_item w ON w.exposure_id = e.id "
            "WHERE w.id = (SELECT max(w2.id) FROM work_item w2 WHERE w2.exposure_id = e.id) "
            "AND e.withdrawn_at IS NOT NULL AND w.withdrawn_at IS NULL")).scalar_one()
    assert dupes == []
    assert running == 0, "a run was left 'running'"
    assert behind == 0 and open_withdrawn == 0, "an item is behind its exposure's version or withdrawal"
    assert {f for f, *_rest, by in rows if by is None} == selected(db), "the work items and the work list disagree"


def bump_rules(db: str, revision: str, table: str, where: dict, changes: dict | None = None) -> None:
    """A new catalog revision that changes the in-force rows of one association table matching ``where``
    (``changes`` None: ends them), as a data migration would: old rows end at it, new ones start there."""
    v = schema.catalog_version
    t = schema.metadata.tables[table]
    with get_engine(db).begin() as conn:
        seq = conn.execute(sa.select(sa.func.max(v.c.seq))).scalar_one()
        conn.execute(v.insert().values(revision=revision, seq=seq + 1, effective_date=dt.date(2026, 11, 1),
                                       reference="test", summary=f"test change of {table}"))
        match = [t.c[k] == value for k, value in where.items()] + [t.c.valid_to.is_(None)]
        rows = conn.execute(sa.select(t).where(*match)).mappings().all()
        assert rows, f"no {table} row in force matches {where}"
        conn.execute(t.update().where(*match).values(valid_to=revision))
        if changes is not None:
            conn.execute(t.insert(), [{**row, **changes, "valid_from": revision, "valid_to": None} for row in rows])


def cli(db: str, *args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """`python -m l2rules --db DB ARGS...` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "l2rules", "--db", db, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120, **kwargs)


def spawn(db: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "l2rules", "--db", db, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
