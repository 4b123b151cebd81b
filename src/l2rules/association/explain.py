"""Why an exposure is or is not the science of a Level 2b association: read off the evaluation's stages."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .. import schema
from .._lazy import pandas as pd
from ..config import DB
from ..inventory import exposure_stem, stdin
from ..inventory.preview import previewed
from ..inventory.store import pool_row
from ..operators import describe
from ..outputs import typed
from ..points import At, Point, resolve, takes_at
from ..published import scratch_tables_allowed, worklist_query
from ..schema import COLUMN_TYPES
from . import rules
from .api import missing_columns
from .columns import AssociationError
from .evaluation import evaluating

if TYPE_CHECKING:
    from .evaluation import Evaluation

EXPLAIN_COLUMNS = ["filename", "pool", "candidate", "candidate_type", "rule", "asn_type", "selected", "reason"]


@takes_at
def explain(db: DB, filename: str, pool: str | int | None = None, *, at: At = None,
            store: bool = False) -> pd.DataFrame:
    """Why an exposure is or is not the science of a Level 2b association: per candidate and rule.

    ``pool`` is a loaded pool's name or id, or a pool file; without it, the pool the exposure was last loaded
    from. A pool file is evaluated without changing the catalog (``inventory.preview``) unless ``store``.
    """
    given = isinstance(pool, (str, Path)) and (stdin.is_stdin(pool) or Path(pool).is_file())  # (-: standard input)
    with previewed(db, [pool] if given else None, store=store) as preview:
        return _explain(preview.engine, filename, next(preview.pool_ids) if given else pool,
                        resolve(preview.engine, at))


def _explain(engine: sa.Engine, filename: str, pool: str | int | None, when: Point | None) -> pd.DataFrame:
    stem = exposure_stem(filename).lower()
    exposure = schema.exposure
    with engine.begin() as conn:
        scratch_tables_allowed(conn)  # (a read of a read-only database still evaluates)
        query = sa.select(exposure.c.id, exposure.c.pool_id, exposure.c.filename, exposure.c.exp_type).where(
            sa.func.lower(exposure.c.stem) == stem, exposure.c.withdrawn_at.is_(None))
        if pool is not None:
            query = query.where(exposure.c.pool_id == pool_row(conn, pool).id)
        found = conn.execute(query).first()
        if found is None:
            raise AssociationError(f"no loaded exposure {filename!r}" + (f" in pool {pool!r}" if pool else ""))
        its_pool = pool_row(conn, found.pool_id)
        base = dict(filename=found.filename, pool=its_pool.name)
        missing = missing_columns(its_pool)
        if missing:
            return _typed(pd.DataFrame([dict(base, selected=False, reason="the pool has no " + ", ".join(missing)
                                             + " column: the pipeline makes no association from it")],
                                       columns=EXPLAIN_COLUMNS))
        with evaluating(conn, when) as evaluation:
            final = evaluation.run([its_pool.id]).subquery()
            rows = _explain_rows(evaluation, final, found.id)
    if not rows:
        rows = [dict(selected=False, reason="no ASN_CANDIDATE: associations are built per candidate")]
    rows.insert(0, _published_verdict(engine, when, found.pool_id, found.id, rows))
    return _typed(pd.DataFrame([dict(base, **row) for row in rows], columns=EXPLAIN_COLUMNS))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return typed(frame, COLUMN_TYPES)


def _published_verdict(engine, when, pool_id: int, exposure_id: int, rows: list[dict]) -> dict:
    """The published table's row for the exposure, first: where the pipeline's rules below go beyond it."""
    query = worklist_query(when, [pool_id], include_all=True).subquery()
    with engine.connect() as conn:
        table = conn.execute(sa.select(query).where(query.c.exposure_id == exposure_id)).mappings().first()
    selected = any(row.get("selected") for row in rows)
    reason = table["reason"]
    if bool(table["level2b"]) != selected:
        reason += ("; the pipeline's rules below select it all the same" if selected
                   else "; the pipeline's rules below do not (their failing condition is named there)")
    return dict(candidate=None, candidate_type=None, rule="published table: " + (table["rule"] or "no rule"),
                asn_type=table["asn_type"], selected=bool(table["level2b"]), reason=reason)


def _explain_rows(evaluation: Evaluation, final, exposure_id) -> list[dict]:
    conn = evaluation.conn
    candidate_members, exposures = evaluation.candidate_members, evaluation.exposures
    condition_columns = evaluation.condition_columns
    condition, rule = rules.condition, rules.rule
    checks = conn.execute(
        sa.select(candidate_members.c.cand_id, candidate_members.c.cand_type, rule.c.name, rule.c.asn_type,
                  rule.c.science_set,
                  sa.or_(rule.c.science_set.is_(None),
                         rules.in_set(rule.c.science_set, exposures.c.exp_type)).label("applicable"),
                  condition.c.alt, condition.c.seq, condition.c.column_name, condition.c.operator,
                  condition.c.value, rules.condition_holds(exposures, condition.c, condition_columns).label("ok"),
                  rules.accessor(exposures, condition.c.column_name, condition_columns).label("got"))
        .select_from(candidate_members.join(exposures, exposures.c.eid == candidate_members.c.eid)
                     .join(rule, sa.true())
                     .join(condition, sa.and_(condition.c.rule_name == rule.c.name, condition.c.subject == "science")))
        .where(candidate_members.c.eid == exposure_id)
        .order_by(candidate_members.c.cand_ord, rule.c.name, condition.c.alt, condition.c.seq)).all()

    def reached(stage: sa.Table) -> set[tuple[str, str]]:
        """The (candidate, rule) pairs of the exposure's associations in ``stage``."""
        return set(conn.execute(sa.select(stage.c.cand_id, stage.c.rule_name).where(stage.c.eid == exposure_id)).all())

    science, made, kept = reached(evaluation.science), reached(evaluation.associations), reached(evaluation.kept)
    wfss_rules = set(conn.execute(sa.select(rule.c.name).where(rule.c.wfss.is_not(None))).scalars())
    finals = {}
    for row in conn.execute(sa.select(final.c.cand_id, final.c.rule_name, final.c.asn_id, final.c.asn_type,
                                      final.c.program, final.c.seq).where(final.c.eid == exposure_id).distinct()):
        finals.setdefault((row.cand_id, row.rule_name), []).append(
            f"{row.asn_id}: jw{row.program}-{row.asn_id}_{row.asn_type}_{row.seq:05d}_asn.json")
    grouped: dict[tuple, list] = {}
    for check in checks:
        grouped.setdefault((check.cand_id, check.cand_type, check.name, check.asn_type, check.science_set,
                            check.applicable), []).append(check)
    out = []
    for (cand_id, cand_type, rule_name, asn_type, science_set, applicable), rule_checks in grouped.items():
        key = (cand_id, rule_name)
        if not applicable:
            continue  # rules that do not take this exp_type as science: summarised below
        row = dict(candidate=cand_id, candidate_type=cand_type, rule=rule_name, asn_type=asn_type, selected=False)
        if key in finals:
            row.update(selected=True, reason="science of " + "; ".join(finals[key]))
        elif key in kept:
            row["reason"] = "conditions hold, but a duplicate association of another rule or candidate is kept"
        elif key in made:
            row["reason"] = f"conditions hold, but a {cand_type} candidate does not keep this rule's associations"
        elif key in science and rule_name in wfss_rules:
            row["reason"] = "conditions hold, but no direct image matches (WFSS needs one)"
        elif key in science:
            row["reason"] = ("conditions hold, but the exposure already joined an earlier science's association "
                             "of this rule")
        else:
            row["reason"] = _first_failure(rule_checks)
        out.append(row)
    if not out and checks:
        types = sorted({check.cand_type for check in checks})
        out.append(dict(candidate=",".join(sorted({check.cand_id for check in checks})), candidate_type=",".join(types),
                        selected=False, reason="no association rule takes this exposure type as science"))
    return out


def _first_failure(checks) -> str:
    """The first failing condition: of the common part, else of the alternative that came closest."""
    by_alt: dict[int, list] = {}
    for check in checks:
        by_alt.setdefault(check.alt, []).append(check)
    alternatives = [alt for alt in by_alt if alt > 0]
    if any(not check.ok for check in by_alt.get(0, [])):
        alt = 0
    else:
        alt = min(alternatives, key=lambda option: (sum(not check.ok for check in by_alt[option]), option))
    first = next(check for check in by_alt[alt] if not check.ok)
    text = describe(first.column_name, first.operator, first.value)
    more = f" (closest of {len(alternatives)} alternatives: {alt})" if alt else ""
    return f"fails {text}; the exposure has {first.column_name}={first.got if first.got is not None else 'empty'}{more}"
