"""Stage 1: the pools' exposures, normalised with derived columns, and the candidates each belongs to (a
candidate is its pool's: its id, e.g. 'o001', names one candidate per pool)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from .. import schema
from . import rules, selection
from .columns import POOL_COLUMNS
from .sql import contains, flag_text, normalised

if TYPE_CHECKING:
    from .evaluation import Evaluation


def stage(evaluation: Evaluation) -> None:
    """``exposures`` and ``candidate_members``: an exposure belongs to every candidate of its pool whose id
    occurs in its ASN_CANDIDATE text, as in the pipeline."""
    pools = evaluation.pools
    assert pools is not None, "Evaluation.run stages the pools first"
    # the values normalised once, in a table of their own: the derived columns read them several times each
    # (in one statement the planner inlines each normalisation at every use: 12 s -> 7 s for 1M exposures, SQLite)
    values = evaluation.stage(normalised_values(pools), "xv")
    # (exp_type: each rule's science, and each companion kind, is looked up by its types, not a scan each)
    exposures = evaluation.exposures = evaluation.stage(with_derived_columns(values, evaluation.value_sets), "xe",
                                                        ("eid",), ("exp_type",))
    candidates = _candidates(pools)
    # The text test on each distinct text of a pool, not on each exposure: a program's exposures share a few
    # ASN_CANDIDATE texts (a substring test per exposure and candidate took 22 s for 1M exposures)
    texts = sa.select(exposures.c.pool_id, exposures.c.cand_raw).distinct().subquery("texts")
    occurs = evaluation.stage(sa.select(texts.c.pool_id, texts.c.cand_raw, candidates.c.cand_id,
                                        candidates.c.cand_type, candidates.c.cand_ord)
                              .join(candidates, sa.and_(candidates.c.pool_id == texts.c.pool_id,
                                                        contains(texts.c.cand_raw, candidates.c.cand_id))),
                              # (SQLite joins through an index; PostgreSQL hashes, and would refuse a
                              #  B-tree entry for a text of hundreds of candidates)
                              "occurs", *([("cand_raw", "pool_id")] if evaluation.conn.dialect.name == "sqlite"
                                          else []))
    every = (sa.select(exposures.c.eid, exposures.c.pool_id, occurs.c.cand_id, occurs.c.cand_type,
                       occurs.c.cand_ord)
             .join_from(exposures, occurs, sa.and_(occurs.c.cand_raw == exposures.c.cand_raw,
                                                   occurs.c.pool_id == exposures.c.pool_id)))
    # (-i, --DMS: the candidates asked for; by default the query as it is)
    evaluation.candidate_members = evaluation.stage(
        every if evaluation.selection == selection.DEFAULT else selection.candidates(evaluation, every, exposures),
        "x")


def normalised_values(pools: sa.Table) -> sa.Select:
    """One row per exposure of the ``pools`` (a table of ``pool_id``): its values normalised."""
    exposure = schema.exposure
    values = {}
    for name in POOL_COLUMNS:
        column = exposure.c[name]
        values[name] = flag_text(column) if name in schema.FLAG_COLUMNS else normalised(column)
    base = sa.select(exposure.c.id.label("eid"), exposure.c.pool_id, exposure.c.source_line.label("row_no"),
                     sa.func.lower(exposure.c.stem).label("stem"),
                     sa.func.lower(sa.func.coalesce(exposure.c.asn_candidate, "")).label("cand_raw"),
                     # as the pipeline reads them for its files: lower case, an empty value 'null'
                     *[sa.func.coalesce(sa.func.lower(exposure.c[name]), "null").label(f"{name}_text")
                       for name in ("exposerr", "targetid")],
                     *[value.label(name) for name, value in values.items()]
                     ).where(exposure.c.pool_id.in_(sa.select(pools.c.pool_id)), exposure.c.withdrawn_at.is_(None))
    return base


def with_derived_columns(base: sa.Table, sets: dict[str, list[str]]) -> sa.Select:
    """The normalised values with the derived columns (``sets``: the value sets in force)."""
    row = base.c
    mapped = rules.member_type.c.member_type  # joined below: one in force per exp_type
    member_type = sa.case(
        (sa.and_(row.pntgtype.is_not(None), row.pntgtype != "science"), row.pntgtype),
        (mapped.is_not(None), mapped),
        (row.is_psf.is_not(None), "psf"), (row.is_imprt.is_not(None), "imprint"),
        (row.bkgdtarg.is_not(None), "background"), else_="science")
    tso = sa.and_(row.pntgtype == "science",
                  sa.or_(row.tsovisit == "t", rules.set_member(sets, "TSO_ALWAYS", row.exp_type)))
    joined = lambda first, second: sa.func.coalesce(first, "") + ":" + sa.func.coalesce(second, "")  # noqa: E731
    derived = sa.select(
        base,
        member_type.label("member_type"),
        sa.case((tso, "y"), else_="n").label("is_tso"),
        sa.func.coalesce(row.filter, row.band).label("opt_filter"),
        sa.func.coalesce(row.pupil, row.grating).label("opt_pupil"),
        sa.func.coalesce(row.subpxpns, row.subpxpts).label("subpx_fs"),
        sa.func.coalesce(row.subpxpts, row.subpxpns).label("subpx_ov"),
        sa.case((row.fxd_slit == "s200b1", "s200b1"), else_="a").label("slit_class"),
        joined(row.exp_type, row.detector).label("exp_detector"),
        joined(row.exp_type, row.pupil).label("exp_pupil"),
        joined(row.dms_note, row.exp_type).label("dms_note_exp"),
    ).select_from(base.outerjoin(rules.member_type, rules.member_type.c.exp_type == row.exp_type)).cte("xd")
    # the member types a Level 2 rule reads as science (value set SCIENCE_MEMBER_TYPES: psf from jwst 1.10.0, JP-3147)
    read_as_science = rules.set_member(sets, "SCIENCE_MEMBER_TYPES", derived.c.member_type)
    return sa.select(derived, sa.case((read_as_science, "science"), else_=derived.c.member_type).label("sci_type"))


def _candidates(pools: sa.Table):
    """Each pool's candidates, each with the place of its first mention in its pool (its order)."""
    exposure, candidate = schema.exposure, schema.exposure_candidate
    return (sa.select(exposure.c.pool_id, candidate.c.cand_id, candidate.c.cand_type,
                      # (a 64-bit product: past 2,147,483 lines a 32-bit one overflowed on PostgreSQL)
                      sa.func.min(sa.cast(exposure.c.source_line, sa.BigInteger) * 1000 + candidate.c.position)
                      .label("cand_ord"))
            .join(exposure, exposure.c.id == candidate.c.exposure_id)
            .where(exposure.c.pool_id.in_(sa.select(pools.c.pool_id)), exposure.c.withdrawn_at.is_(None))
            .group_by(exposure.c.pool_id, candidate.c.cand_id, candidate.c.cand_type)).cte("cand")
