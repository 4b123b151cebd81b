"""Stage 5: duplicate pruning as the pipeline does it, then sequence numbers; the final member rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import rules
from .sql import copy_key, keys_equal, row_number, zero_padded

if TYPE_CHECKING:
    from .evaluation import Evaluation


def stage(evaluation: Evaluation) -> sa.Select:
    """``member_counts``, ``deduplicated``, ``pruned`` and ``sequenced``; returns the final SELECT (one row per
    member)."""
    associations, members = evaluation.with_copies, evaluation.named_members
    counts = evaluation.member_counts = evaluation.stage(
        sa.select(*copy_key(members), sa.func.count().label("n")).group_by(*copy_key(members)), "counts",
        ("eid", "cand_id", "rule_name", "asn_id"))
    # identical member lists: the later candidate id wins, then the rule later by name (or, where the
    # catalog's duplicate_rule_order says 'position' - jwst 1.8.5 to 1.13 - later in rules_level2b.py)
    if rules.parameter_value(evaluation.conn, "duplicate_rule_order") == "position":
        def place(name):
            return sa.select(rules.rule.c.position).where(rules.rule.c.name == name).scalar_subquery()
        later_rule = lambda pair: place(pair.b_rule_name) > place(pair.a_rule_name)  # noqa: E731
    else:
        later_rule = lambda pair: pair.b_rule_name > pair.a_rule_name  # noqa: E731
    first_member, second_member = members.alias("ma"), members.alias("mb")
    common = (sa.select(*[column.label("a_" + column.name) for column in copy_key(first_member)],
                        *[column.label("b_" + column.name) for column in copy_key(second_member)],
                        sa.func.count().label("n"))
              .select_from(first_member.join(second_member, sa.and_(first_member.c.expname == second_member.c.expname,
                                                                    first_member.c.role == second_member.c.role)))
              .group_by(*copy_key(first_member), *copy_key(second_member))).cte("common")
    first_count, second_count = counts.alias("ca"), counts.alias("cb")
    rule_wins = later_rule(common.c)
    side = lambda table, prefix: keys_equal(  # noqa: E731
        [common.c[prefix + column.name] for column in copy_key(table)], copy_key(table))
    loser = (sa.select(common.c.a_eid, common.c.a_cand_id, common.c.a_rule_name, common.c.a_asn_id)
             .select_from(common.join(first_count, side(first_count, "a_")).join(second_count,
                                                                                 side(second_count, "b_")))
             .where(first_count.c.n == common.c.n, second_count.c.n == common.c.n,
                    sa.or_(common.c.b_asn_id > common.c.a_asn_id,
                           sa.and_(common.c.b_asn_id == common.c.a_asn_id, rule_wins)))
             ).cte("loser")
    # (anti-joins: outer joins kept where nothing matched, set-based where a NOT EXISTS was a lookup per row)
    losers = sa.select(loser.c.a_eid, loser.c.a_cand_id, loser.c.a_rule_name, loser.c.a_asn_id).distinct().cte("losers")
    deduplicated = evaluation.deduplicated = evaluation.stage(
        sa.select(associations).select_from(associations.outerjoin(losers, keys_equal(
            (losers.c.a_eid, losers.c.a_cand_id, losers.c.a_rule_name, losers.c.a_asn_id), copy_key(associations))))
        .where(losers.c.a_eid.is_(None)), "asn3", ("product",))
    # same product, fewer members, no exposure in both with different roles: the smaller goes
    smaller, bigger = deduplicated.alias("p"), deduplicated.alias("q")
    smaller_count, bigger_count = counts.alias("cp"), counts.alias("cq")
    smaller_member, bigger_member = members.alias("mp"), members.alias("mq")
    # the (smaller, bigger) pairs of a product, then those sharing an exposure in different roles
    pairs = (sa.select(*(column.label("p_" + column.name) for column in copy_key(smaller)),
                       *(column.label("q_" + column.name) for column in copy_key(bigger)))
             .select_from(smaller.join(bigger, bigger.c.product == smaller.c.product)
                          .join(smaller_count, keys_equal(copy_key(smaller_count), copy_key(smaller)))
                          .join(bigger_count, keys_equal(copy_key(bigger_count), copy_key(bigger))))
             .where(bigger_count.c.n > smaller_count.c.n)).cte("bigger_pairs")

    def half(prefix):  # the smaller ("p_") or the bigger ("q_") association of a pair
        return tuple(pairs.c[prefix + name] for name in ("eid", "cand_id", "rule_name", "asn_id"))

    conflicts = (sa.select(*pairs.c).distinct()
                 .select_from(pairs.join(smaller_member, keys_equal(copy_key(smaller_member), half("p_")))
                              .join(bigger_member, sa.and_(keys_equal(copy_key(bigger_member), half("q_")),
                                                           bigger_member.c.mid == smaller_member.c.mid)))
                 .where(smaller_member.c.role != bigger_member.c.role)).cte("conflicts")
    conflicting = conflicts.alias("c")
    beaten = (sa.select(*half("p_")).distinct()
              .select_from(pairs.outerjoin(conflicting, keys_equal(
                  tuple(conflicting.c[c.name] for c in pairs.c), tuple(pairs.c))))
              .where(conflicting.c.p_eid.is_(None))).cte("beaten")
    pruned = evaluation.pruned = evaluation.stage(
        sa.select(smaller).select_from(smaller.outerjoin(beaten, keys_equal(
            (beaten.c.p_eid, beaten.c.p_cand_id, beaten.c.p_rule_name, beaten.c.p_asn_id), copy_key(smaller))))
        .where(beaten.c.p_eid.is_(None)), "asn4")
    seq = row_number().over(partition_by=[pruned.c.asn_id, pruned.c.asn_type],
                                    order_by=[pruned.c.cand_ord.desc(), pruned.c.made_at.desc(),
                                              pruned.c.row_no.desc(), pruned.c.rule_name.desc()])
    final = evaluation.sequenced = evaluation.stage(sa.select(pruned, seq.label("seq")), "asn5",
                                                    ("eid", "cand_id", "rule_name", "asn_id"))
    # the association's target: the TARGETID of the exposure the pipeline made it with (see members)
    target = sa.func.first_value(members.c.targetid_text).over(
        partition_by=list(copy_key(members)), order_by=[sa.case((members.c.mgroup == 3, 1), else_=0), members.c.mord])
    return (sa.select(final.c.asn_id, (final.c.prefix + final.c.rule_name).label("asn_rule"), final.c.rule_name,
                      final.c.asn_type, zero_padded(final.c.program, 5).label("program"), final.c.product,
                      final.c.seq, final.c.eid, final.c.cand_id, final.c.cand_type,
                      target.label("target"), members.c.expname,
                      members.c.role.label("exptype"), members.c.exposerr, members.c.exposerr_text,
                      members.c.mid.label("exposure_id"), members.c.stem)
            .select_from(final.join(members, keys_equal(copy_key(members), copy_key(final))))
            .order_by(final.c.asn_id, final.c.asn_type, final.c.seq, members.c.mgroup, members.c.mord))
