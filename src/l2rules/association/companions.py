"""Stage 3: companions per science - eligible by their own conditions, matched with the science on
the grouping keys, attached as the pipeline's processing order allows, overlapping nods left out -
and the direct image each WFSS science takes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import rules
from .columns import ACCESSIBLE
from .sql import as_integer, contains, joined_text, row_number, union_all

if TYPE_CHECKING:
    from .evaluation import Evaluation


def stage(evaluation: Evaluation) -> None:
    """``companion_kinds``, ``eligible_companions``, ``matched`` and ``pairs``."""
    exposures, science = evaluation.exposures, evaluation.science
    companion, rule, conn = rules.companion, rules.rule, evaluation.conn
    # eligible by their own conditions (only for rules that have some science), tested on each exposure
    # as one expression per (rule, kind): see rules.compiled_conditions
    used = set(conn.execute(sa.select(evaluation.science_rules.c.rule_name).distinct()).scalars())
    compiled, sets = evaluation.compiled, evaluation.value_sets
    kinds = conn.execute(sa.select(companion.c.rule_name, companion.c.kind, companion.c.exp_type_set)
                         .where(companion.c.source == "pool").order_by(companion.c.rule_name, companion.c.kind)).all()
    takes = [sa.select(exposures.c.eid, sa.literal(name, sa.String).label("rule_name"),
                       sa.literal(kind, sa.String).label("kind")).where(
                 rules.in_set_where(sets, exp_type_set, exposures.c.exp_type),
                 compiled[(name, kind)])
             for name, kind, exp_type_set in kinds if name in used and (name, kind) in compiled]
    # staged: as a subquery joined with the candidates, SQLite ran every select per exposure (10 minutes)
    eligible = evaluation.stage(union_all(exposures, takes, "rule_name", "kind"), "celig")
    candidate_members = evaluation.candidate_members
    eligible_companions = evaluation.eligible_companions = evaluation.stage(sa.union(
        sa.select(candidate_members.c.eid, candidate_members.c.pool_id, candidate_members.c.cand_id,
                  eligible.c.rule_name, eligible.c.kind)
        .join(eligible, eligible.c.eid == candidate_members.c.eid),
        sa.select(science.c.eid, science.c.pool_id, science.c.cand_id, science.c.rule_name, companion.c.kind)
        .join(companion, sa.and_(companion.c.rule_name == science.c.rule_name, companion.c.source == "science")),
    ), "cpool", ("cand_id", "rule_name", "pool_id"),
        ("rule_name", "kind", "cand_id", "pool_id"))  # the second: one select per (rule, kind)
    # matched with the science on the grouping keys
    science_row, other_row = exposures.alias("xs"), exposures.alias("xo")
    # one expression per (rule, kind) of its keys, as for the conditions; a kind without keys matches none
    keys: dict[tuple[str, str], list] = {}
    for key in conn.execute(sa.select(rules.companion_key).order_by(rules.companion_key.c.rule_name,
                                                                    rules.companion_key.c.kind)):
        keys.setdefault((key.rule_name, key.kind), []).append((key.column_name, key.match))
    # The 'eq' keys of a kind are joined on, not tested on every pair of a candidate: their values, joined
    # in one text, index the eligible companions (``keyed``), which each science looks up by its own
    # (the pairs of a 1M-exposure pool's candidates were 20 s of its run on SQLite)
    equal = {kind: [column for column, match in columns if match == "eq"] for kind, columns in keys.items()}
    keyed = _keyed(evaluation, eligible_companions, exposures.alias("xk"),
                   {kind: columns for kind, columns in equal.items() if columns})
    pairs = []
    for (name, kind), columns in keys.items():
        if any(column not in ACCESSIBLE for column in equal[(name, kind)]):
            continue  # an 'eq' key on a column no exposure has never holds
        tests = [_key_holds(science_row, other_row, column, match) for column, match in columns if match != "eq"]
        if equal[(name, kind)]:
            companions = keyed
            on = [keyed.c.key == key_text(science_row, equal[(name, kind)])]
        else:
            companions, on = eligible_companions, []
        # (a candidate's companions are of its pool: candidate ids are per pool)
        pairs.append(sa.select(science.c.eid, science.c.pool_id, science.c.cand_id, science.c.rule_name,
                               companions.c.kind, companions.c.eid.label("oid"))
                     .select_from(science.join(science_row, science_row.c.eid == science.c.eid)
                                  .join(companions, sa.and_(companions.c.cand_id == science.c.cand_id,
                                                            companions.c.pool_id == science.c.pool_id,
                                                            companions.c.rule_name == science.c.rule_name,
                                                            companions.c.kind == kind, *on,
                                                            companions.c.eid != science.c.eid))
                                  .join(other_row, other_row.c.eid == companions.c.eid))
                     .where(science.c.rule_name == name, *tests))
    matched = evaluation.matched = evaluation.stage(
        sa.union(*pairs) if len(pairs) > 1 else pairs[0].distinct() if pairs else
        sa.select(science.c.eid, science.c.pool_id, science.c.cand_id, science.c.rule_name,
                  sa.literal("", sa.String).label("kind"), science.c.eid.label("oid")).where(sa.false()), "matched")
    # attached as the pipeline's processing order allows
    first_row = exposures.alias("xf")
    # the first science of each rule in each candidate (for companions that attach in pool order)
    first = (sa.select(science.c.pool_id, science.c.cand_id, science.c.rule_name,
                       sa.func.min(first_row.c.row_no).label("row_no"))
             .select_from(science.join(first_row, first_row.c.eid == science.c.eid))
             .group_by(science.c.pool_id, science.c.cand_id, science.c.rule_name)).subquery()
    is_first = science_row.c.row_no == first.c.row_no
    attach = companion.c.attach
    attached = sa.or_(attach == "always",
                      sa.and_(attach == "order", sa.or_(other_row.c.row_no > science_row.c.row_no, is_first)),
                      sa.and_(attach == "after", other_row.c.row_no > science_row.c.row_no),
                      sa.and_(attach == "leading", other_row.c.row_no < science_row.c.row_no, is_first),
                      sa.and_(attach == "next", other_row.c.row_no < science_row.c.row_no),
                      attach == "first")
    # 'first' and 'next': a companion goes to the earliest science it suits (for 'next', the first after it);
    # each science keeps its first 'first' companion and every 'next' one
    owner = row_number().over(partition_by=[matched.c.pool_id, matched.c.cand_id, matched.c.rule_name, matched.c.kind,
                                            matched.c.oid],
                              order_by=science_row.c.row_no)

    # the nod rules whose backgrounds must be of the science's own TARGETID (jwst 1.19.0 on)
    same_target = rules.set_member(sets, "NOD_SAME_TARGET", rule.c.name)

    def attachable(first_only: bool) -> sa.Select:
        # the windows only for the kinds that attach 'first' or 'next': a sort of every pair was most of this stage
        return (sa.select(matched, companion.c.role, companion.c.source, rule.c.wfss,
                          science_row.c.row_no.label("sci_row"),
                          *([other_row.c.row_no.label("row"), owner.label("owner"), attach.label("attach")]
                            if first_only else []))
                .select_from(matched.join(companion, sa.and_(companion.c.rule_name == matched.c.rule_name,
                                                             companion.c.kind == matched.c.kind))
                             .join(rule, rule.c.name == matched.c.rule_name)
                             .join(science_row, science_row.c.eid == matched.c.eid)
                             .join(other_row, other_row.c.eid == matched.c.oid)
                             .join(first, sa.and_(first.c.cand_id == matched.c.cand_id,
                                                  first.c.pool_id == matched.c.pool_id,
                                                  first.c.rule_name == matched.c.rule_name)))
                .where(attach.in_(["first", "next"]) if first_only else attach.not_in(["first", "next"]),
                       attached, sa.or_(companion.c.source != "science",
                                        sa.not_(_overlap(science_row, other_row, rule.c.nod_overlap,
                                                        same_target)))))

    owned = attachable(True).subquery()
    owned = sa.select(owned).where(owned.c.owner == 1).subquery()
    rank = row_number().over(partition_by=[owned.c.eid, owned.c.cand_id, owned.c.rule_name, owned.c.kind],
                             order_by=owned.c.row)
    ranked = sa.select(owned, rank.label("rank")).subquery()
    owned_pairs = (sa.select(*[column for column in ranked.c if column.name not in ("rank", "owner", "row", "attach")])
                   .where(sa.or_(ranked.c.rank == 1, ranked.c.attach == "next")))
    evaluation.pairs = evaluation.stage(sa.union_all(attachable(False), owned_pairs), "pairs")


def nod_groups(evaluation: Evaluation) -> sa.Subquery:
    """Per science with science companions (a nod group): its first pool row, where the pipeline makes
    the group when it reads its first science nod - the row that orders its associations."""
    matched, companion = evaluation.matched, rules.companion
    group_row = evaluation.exposures.alias("xg")
    return (sa.select(matched.c.eid, matched.c.cand_id, matched.c.rule_name,
                      sa.func.min(group_row.c.row_no).label("row"))
            .select_from(matched.join(companion, sa.and_(companion.c.rule_name == matched.c.rule_name,
                                                         companion.c.kind == matched.c.kind))
                         .join(group_row, group_row.c.eid == matched.c.oid))
            .where(companion.c.source == "science")
            .group_by(matched.c.eid, matched.c.cand_id, matched.c.rule_name)).subquery()


def direct_images(evaluation: Evaluation) -> sa.CTE:
    """WFSS: the direct image each science takes, the nearest following one by EXPSPCIN (parallel: the
    first, or the first long-wave one where the value set LONG_WAVE_DIRECT_IMAGE has the rule's ``wfss``)."""
    pairs = evaluation.pairs
    long_wave = rules.set_member(evaluation.value_sets, "LONG_WAVE_DIRECT_IMAGE", pairs.c.wfss)
    science_row, other_row = evaluation.exposures.alias("xs"), evaluation.exposures.alias("xo")
    distance = as_integer(other_row.c.expspcin) - as_integer(science_row.c.expspcin)
    # two keys, not one number (row + 1,000,000 put a later row of a larger pool before a nearer one)
    first_key = sa.case((pairs.c.wfss == "parallel",
                         sa.case((sa.and_(long_wave, other_row.c.filename.contains("long")), 0), else_=1)),
                        (distance > 0, 0), else_=1)
    second_key = sa.case((pairs.c.wfss == "parallel", other_row.c.row_no), (distance > 0, distance),
                         else_=other_row.c.row_no)
    ranked = (sa.select(pairs.c.eid, pairs.c.cand_id, pairs.c.rule_name, pairs.c.oid,
                        row_number().over(partition_by=[pairs.c.eid, pairs.c.cand_id, pairs.c.rule_name],
                                          order_by=[first_key, second_key]).label("rk"))
              .select_from(pairs.join(science_row, science_row.c.eid == pairs.c.eid)
                           .join(other_row, other_row.c.eid == pairs.c.oid))
              .where(pairs.c.role == "direct_image")).cte("direct")
    return sa.select(ranked).where(ranked.c.rk == 1).cte("chosen")


def key_text(row, columns: list[str]) -> sa.ColumnElement[str]:
    """The values of ``columns`` of an exposure row joined in one text; NULL when one is (as 'eq' never
    holds for a NULL: no companion is keyed under it, no science looks one up with it)."""
    return joined_text(*(row.c[column] for column in columns))


def _keyed(evaluation: Evaluation, eligible: sa.Table, companion_row, equal: dict[tuple[str, str], list[str]]
           ) -> sa.Table | None:
    """The eligible companions of each (rule, kind) with 'eq' keys, with the text of their values (``key``)."""
    selects = [sa.select(eligible.c.eid, eligible.c.pool_id, eligible.c.cand_id, eligible.c.rule_name, eligible.c.kind,
                         key_text(companion_row, columns).label("key"))
               .join(companion_row, companion_row.c.eid == eligible.c.eid)
               .where(eligible.c.rule_name == name, eligible.c.kind == kind,
                      key_text(companion_row, columns).is_not(None))
               for (name, kind), columns in equal.items() if all(column in ACCESSIBLE for column in columns)]
    if not selects:
        return None
    # (SQLite looks them up through the index; PostgreSQL hashes, and a B-tree entry has a size limit that
    #  a long value could pass)
    return evaluation.stage(sa.union_all(*selects) if len(selects) > 1 else selects[0], "cpool_keyed",
                            # (the key first: led by the rule, SQLite scanned it as the outer table)
                            *([("key", "cand_id", "pool_id")] if evaluation.conn.dialect.name == "sqlite"
                              else []))


def _key_holds(science_row, other_row, column_name: str, match: str) -> sa.ColumnElement[bool]:
    """A grouping key holds between a science and a companion: true or false, never null."""
    # a column no exposure has is NULL on both sides (a typed NULL: SQLAlchemy reads ``null() == null()`` as
    # ``NULL IS NULL``, true, where the catalog's row form compared two NULLs: not true)
    missing = sa.cast(sa.null(), sa.String)
    science_value = science_row.c[column_name] if column_name in ACCESSIBLE else missing
    other_value = other_row.c[column_name] if column_name in ACCESSIBLE else missing
    if match == "eq":
        return sa.func.coalesce(science_value == other_value, sa.false())
    if match == "opt_eq":
        return sa.or_(science_value.is_(None), other_value.is_(None), science_value == other_value)
    if match == "ne":
        return sa.or_(science_value.is_(None), other_value.is_(None), science_value != other_value)
    if match == "same":
        return science_value.is_not_distinct_from(other_value)
    if match == "lacks":
        return sa.and_(science_value.is_not(None), other_value.is_not(None),
                       sa.not_(contains(other_value, science_value)))
    return sa.false()


def _overlap(science_row, other_row, policy, same_target):
    """Another science nod ``other_row`` overlaps the science ``science_row`` (so it cannot serve as its
    background), by the rule's ``nod_overlap`` policy: the same primary position overlaps in each; 'fs'
    also the adjacent positions of an S1600A1 5-point nod. A nod whose position is unknown overlaps for
    'fs' and 'fs_primary', not for 'msa' and 'msa_primary'; the '_primary' policies (jwst before 1.16.0)
    never read NUMDTHPT, the others need it. Where ``same_target`` holds, a nod of another TARGETID
    overlaps too."""
    science_position, science_points = as_integer(science_row.c.patt_num), as_integer(science_row.c.numdthpt)
    science_subpixel = as_integer(science_row.c.subpx_ov)
    other_position, other_subpixel = as_integer(other_row.c.patt_num), as_integer(other_row.c.subpx_ov)
    unknown = sa.or_(science_position.is_(None), science_subpixel.is_(None), other_position.is_(None),
                     other_subpixel.is_(None), science_subpixel == 0, other_subpixel == 0)
    bad = sa.case((policy.in_(["fs_primary", "msa_primary"]), unknown),
                  else_=sa.or_(unknown, science_points.is_(None)))
    nonzero = lambda number: sa.case((number == 0, 1), else_=number)  # noqa: E731 - guarded by ``bad`` anyway
    science_nod = (science_position - 1) // nonzero(science_subpixel)
    other_nod = (other_position - 1) // nonzero(other_subpixel)
    adjacent = sa.and_(science_row.c.fxd_slit == "s1600a1", science_points // nonzero(science_subpixel) == 5,
                       sa.between(science_nod - other_nod, -1, 1))
    fixed_slit = sa.case((bad, sa.true()), (science_nod == other_nod, sa.true()),
                         (sa.and_(policy == "fs", adjacent), sa.true()), else_=sa.false())
    mos = sa.case((bad, sa.false()), (science_nod == other_nod, sa.true()), else_=sa.false())
    other_target = sa.func.coalesce(science_row.c.targetid, "") != sa.func.coalesce(other_row.c.targetid, "")
    return sa.case((sa.and_(same_target, other_target), sa.true()),
                   (policy.in_(["fs", "fs_primary"]), fixed_slit), (policy.in_(["msa", "msa_primary"]), mos),
                   else_=sa.false())
