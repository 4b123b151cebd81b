"""The public functions: associations of a pool, their files, and how they change between catalog points."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from .._lazy import pandas as pd
from .. import schema
from ..catalog import resolve_version
from ..config import DB
from ..inventory import load
from ..migrate import require_migrated
from .columns import REQUIRED_POOL_COLUMNS, AssociationError
from .evaluation import evaluating

DEGRADED_OK = "No known degraded exposures in association."
DEGRADED_NOTOK = ("One or more members have an error associated with them."
                  "\nDetails can be found in the member.exposerr attribute.")


@dataclass
class Association:
    """One Level 2b association, in the pipeline's JSON shape (``as_dict``)."""

    asn_id: str
    asn_rule: str
    asn_type: str
    asn_pool: str
    program: str
    product: str
    seq: int
    members: list[dict] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return f"jw{self.program}-{self.asn_id}_{self.asn_type}_{self.seq:05d}_asn.json"

    def as_dict(self) -> dict:
        degraded = any(member.get("exposerr") for member in self.members)
        return {
            "asn_type": self.asn_type, "asn_rule": self.asn_rule, "asn_id": self.asn_id,
            "asn_pool": self.asn_pool, "program": self.program,
            "degraded_status": DEGRADED_NOTOK if degraded else DEGRADED_OK,
            "products": [{"name": self.product,
                          "members": [{"expname": member["expname"], "exptype": member["exptype"],
                                       **({"exposerr": member["exposerr"]} if member.get("exposerr") else {})}
                                      for member in self.members]}],
        }


def pool_row(conn: sa.Connection, pool: str | int) -> sa.Row:
    """The loaded pool, by name or id."""
    table = schema.pool
    where = table.c.id == pool if isinstance(pool, int) else table.c.name == pool
    row = conn.execute(sa.select(table).where(where)).first()
    if row is None:
        raise AssociationError(f"no loaded pool {pool!r}; load it first (`l2rules load POOL`)")
    return row


def missing_columns(pool: sa.Row) -> list[str]:
    """The columns the pipeline needs that the pool lacks."""
    columns = set(pool.columns.split("|"))
    return [column for column in REQUIRED_POOL_COLUMNS if column not in columns]


def associations(db: DB, pool: str | int, *, as_of: str | dt.date | None = None, version: str | None = None,
                 pipeline: str | None = None) -> list[Association]:
    """The Level 2b associations the pipeline makes of one loaded pool (by name or id).

    By the head rules, or those in force on date ``as_of``, at catalog ``version``, or of jwst release
    ``pipeline`` (``"1.16.1"``).
    """
    engine = require_migrated(db)
    when = resolve_version(engine, as_of, version, pipeline)
    with engine.begin() as conn:
        found = pool_row(conn, pool)
        if missing_columns(found):
            return []
        with evaluating(conn, when) as evaluation:
            rows = conn.execute(evaluation.run(found.id)).mappings().all()
    made: dict[tuple, Association] = {}
    for row in rows:
        key = (row["asn_id"], row["asn_rule"], row["eid"], row["cand_id"])
        association = made.get(key)
        if association is None:
            association = made[key] = Association(row["asn_id"], row["asn_rule"], row["asn_type"], found.name,
                                                  row["program"], row["product"], row["seq"])
        association.members.append({"expname": row["expname"], "exptype": row["exptype"],
                                    "exposerr": row["exposerr"], "exposure_id": row["exposure_id"],
                                    "stem": row["stem"]})
    return list(made.values())


def science_of(asns: Iterable[Association]) -> dict[int, list[Association]]:
    """The associations each exposure is the science of, keyed by its exposure id (``exposure.id``)."""
    return _science_by(asns, "exposure_id")


def science_by_stem(asns: Iterable[Association]) -> dict[str, list[Association]]:
    """The associations each exposure is the science of, keyed by its lower-cased FILENAME stem: for
    callers that know exposures by file name only (``inventory.exposure_stem(filename).lower()``)."""
    return _science_by(asns, "stem")


def _science_by(asns: Iterable[Association], key: str) -> dict:
    science: dict = {}
    for association in asns:
        for member in association.members:
            if member["exptype"] == "science":
                science.setdefault(member[key], []).append(association)
    return science


#: What the parts of an association file name may hold (the pipeline's own are digits, and candidate
#: ids such as o001, c1000, a3001): never a path separator, a dot or anything a shell would expand.
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


def write_associations(asns: Iterable[Association], output: str | Path) -> list[Path]:
    """One ``jw<program>-<candidate>_<asn_type>_<seq>_asn.json`` file per association, in ``output``.

    Names are made only from validated parts and written without following symbolic links, so a
    hostile PROGRAM or candidate id in a pool cannot write outside ``output``.
    """
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise AssociationError(f"--output {output}: not a directory")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for association in asns:
        for what, value in (("PROGRAM", association.program), ("candidate id", association.asn_id),
                            ("asn_type", association.asn_type)):
            if not _NAME_PART.fullmatch(str(value)):
                raise AssociationError(f"{association.asn_pool}: {what} {str(value)[:80]!r} cannot name an association "
                                       "file (letters, digits, '_' and '-' only)")
        path = out / association.filename
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        try:
            descriptor = os.open(path, flags, 0o644)
        except OSError as exc:
            raise AssociationError(f"{path}: cannot write it ({exc.strerror}; a symbolic link is not followed)") \
                from None
        with os.fdopen(descriptor, "w") as handle:
            handle.write(json.dumps(association.as_dict(), indent=4) + "\n")
        paths.append(path)
    return paths


def asn(db: DB, pools: Iterable[str | Path], output: str | Path, *, skip_bad: bool = False,
        as_of: str | dt.date | None = None, version: str | None = None, pipeline: str | None = None) -> list[Path]:
    """Load each pool and write its Level 2b associations to ``output``; returns the files written.

    With several pools, each gets a directory of its own under ``output`` (named after the pool
    file): the pipeline's names (program, candidate, type, sequence) repeat from pool to pool.
    Each pool is evaluated right after its load (exposures are identified by stem, so a later pool
    holding the same stems takes them over).
    """
    engine = require_migrated(db, create=True)  # it loads the pools first
    pools = list(pools)
    stems = [Path(path).stem for path in pools]
    if len(set(stems)) < len(stems):
        raise AssociationError("two pools have the same file name; write them in separate runs")
    written = []
    for path, stem in zip(pools, stems):
        result = load(path, engine, skip_bad=skip_bad)
        target = Path(output) / stem if len(pools) > 1 else Path(output)
        made = associations(engine, result.pool_id, as_of=as_of, version=version, pipeline=pipeline)
        written += write_associations(made, target)
    return written


IMPACT_COLUMNS = ["change", "instrument", "pool", "filename", "exp_type", "asn_type_from", "asn_type_to",
                  "role_from", "role_to", "input_from", "input_to", "association_from", "association_to"]
_INSTRUMENTS = {"nrc": "NIRCam", "mir": "MIRI", "nrs": "NIRSpec", "nis": "NIRISS", "fgs": "FGS"}


def impact(db: DB, from_point: str, to_point: str, *,
           pools: Iterable[str | Path] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the pipeline's Level 2b processing of each exposure becomes between two catalog points
    (pipeline releases such as ``1.16.1``, revisions or dates): the exposures that enter or leave,
    or change asn_type, role, Level 2b input or association; and counts per instrument.

    An exposure is on the work list when it is the science of some association (as in
    ``worklist``): enters and leaves are decided by that; its role is every member type it has.
    ``pools`` are loaded and compared one by one (each right after its load, as ``asn`` does: pools
    may share FILENAME stems); without, every loaded pool.
    """
    from ..catalog import resolve_point

    engine = require_migrated(db, create=bool(pools))
    points = [resolve_point(engine, point) for point in (from_point, to_point)]
    if pools:
        pool_ids = (load(path, engine).pool_id for path in pools)
    else:
        with engine.connect() as conn:
            pool_ids = list(conn.execute(sa.select(schema.pool.c.id).order_by(schema.pool.c.name)).scalars())
    exposure = schema.exposure
    rows = []
    for pool_id in pool_ids:
        with engine.connect() as conn:
            name = pool_row(conn, pool_id).name
            exposures = conn.execute(sa.select(exposure.c.id, exposure.c.filename, exposure.c.exp_type).where(
                exposure.c.pool_id == pool_id, exposure.c.withdrawn_at.is_(None))
                .order_by(exposure.c.source_line)).all()
        sides = [_compared(associations(engine, pool_id, as_of=point)) for point in points]
        for exposure_id, filename, exp_type in exposures:
            before, after = (side.get(exposure_id) for side in sides)
            if before == after or (before is None and after is None):
                continue
            change = "enters" if before is None else "leaves" if after is None else next(
                f"{what} changes" for what, i in (("asn_type", 0), ("role", 1), ("input", 2), ("association", 3))
                if before[i] != after[i])
            rows.append(dict(change=change, instrument=_INSTRUMENTS.get(exp_type[:3].lower(), "other"), pool=name,
                             filename=filename, exp_type=exp_type,
                             **{f"{column}_{side}": (None if value is None else value[i])
                                for side, value in (("from", before), ("to", after))
                                for i, column in enumerate(("asn_type", "role", "input", "association"))}))
    from ..outputs import typed
    from ..worklist import COLUMN_TYPES

    exposures = pd.DataFrame(rows, columns=IMPACT_COLUMNS)
    counts = (exposures.groupby(["instrument", "change"]).size().rename("exposures").reset_index()
              if len(exposures) else pd.DataFrame(columns=["instrument", "change", "exposures"]))
    return typed(exposures, COLUMN_TYPES), typed(counts, COLUMN_TYPES)


def processing(asns: Iterable[Association]) -> dict[int, tuple[set[str], set[tuple[str, str, str, str]]]]:
    """Per exposure (id) that is a member of some association: the member types it has, and for each
    association it is the science of, (asn_type, its Level 2b input name, association file, rule).

    The pipeline's answer for one exposure, as the work list and ``impact`` read it.
    """
    found: dict[int, tuple[set[str], set[tuple[str, str, str, str]]]] = {}
    for association in asns:
        for member in association.members:
            if member["exposure_id"] is None:
                continue  # a WFSS direct image's level-3 product, not an exposure
            member_types, science = found.setdefault(member["exposure_id"], (set(), set()))
            member_types.add(member["exptype"])
            if member["exptype"] == "science":
                science.add((association.asn_type, member["expname"], association.filename, association.asn_rule))
    return found


def _compared(asns: list[Association]) -> dict[int, tuple[str, str, str, str]]:
    """Per exposure on the work list (the science of some association): its asn_types, member types, Level
    2b input names and association files with their rules, each ';'-joined: what ``impact`` compares."""
    def joined(values) -> str:
        return ";".join(sorted(set(values)))

    return {exposure_id: (joined(s[0] for s in science), joined(member_types), joined(s[1] for s in science),
                          joined(f"{s[2]} ({s[3]})" for s in science))
            for exposure_id, (member_types, science) in processing(asns).items() if science}
