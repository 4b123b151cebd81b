"""Stage 5: duplicate pruning as the pipeline does it, then sequence numbers; the final member rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import rules, selection
from .sql import copy_key, keys_equal, row_number, zero_padded

if TYPE_CHECKING:
    from .evaluation import Evaluation


def stage(evaluation: Evaluation) -> sa.Select:
    """``member_counts``, ``deduplicated``, ``pruned`` and ``sequenced``; returns the final SELECT (one row per
    member)."""
    associations, members = evaluation.with_copies, evaluation.named_members
    # With each association's count, a fingerprint of its members (two sums over their exposure ids): equal
    # member lists have equal fingerprints, so only associations whose fingerprints agree are compared member
    # by member. Comparing every pair sharing a member was quadratic in a candidate whose associations share
    # their backgrounds: 0.6 s for 800 exposures, 57 s for 2,400 (a NIRSpec candidate, SQLite).
    counts = evaluation.member_counts = evaluation.stage(
        sa.select(*copy_key(members), members.c.pool_id, sa.func.count().label("n"),
                  sa.func.sum(members.c.mid).label("id_sum"),
                  # (a second sum of each id's residues: bounded terms, no overflow however large the ids)
                  sa.func.sum((members.c.mid % 1_000_003) * (members.c.mid % 997)).label("id_mix"))
        .group_by(*copy_key(members), members.c.pool_id), "counts",  # (eid names the pool: one group each)
        ("eid", "cand_id", "rule_name", "asn_id"), ("pool_id", "n", "id_sum", "id_mix"))
    # identical member lists: the later candidate id wins, then the rule later by name (or, where the
    # catalog's duplicate_rule_order says 'position' - jwst 1.8.5 to 1.13 - later in rules_level2b.py)
    by_position = rules.parameter_value(evaluation.conn, "duplicate_rule_order") == "position"
    later_rule = lambda pair: (_rule_order(pair.b_rule_name, by_position)  # noqa: E731
                               > _rule_order(pair.a_rule_name, by_position))
    first_member, second_member = members.alias("ma"), members.alias("mb")
    a_print, b_print = counts.alias("fa"), counts.alias("fb")
    # (a table of its own: as a CTE the planners joined the members by name first, the quadratic way again)
    alike = evaluation.stage(
        sa.select(*[column.label("a_" + column.name) for column in copy_key(a_print)],
                  *[column.label("b_" + column.name) for column in copy_key(b_print)])
        .select_from(a_print.join(b_print, sa.and_(*(b_print.c[name] == a_print.c[name]
                                                     # (duplicates are of one pool's associations)
                                                     for name in ("pool_id", "n", "id_sum", "id_mix")))))
        .where(sa.not_(keys_equal(copy_key(a_print), copy_key(b_print)))), "alike")

    def of(prefix: str, table) -> list:  # the alike pair's side that names ``table``'s association
        return [alike.c[prefix + column.name] for column in copy_key(table)]

    common = (sa.select(*of("a_", first_member), *of("b_", second_member), sa.func.count().label("n"))
              .select_from(alike.join(first_member, keys_equal(copy_key(first_member), of("a_", first_member)))
                           .join(second_member, sa.and_(keys_equal(copy_key(second_member), of("b_", second_member)),
                                                        first_member.c.expname == second_member.c.expname,
                                                        first_member.c.role == second_member.c.role)))
              .group_by(*alike.c)).cte("common")
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
    if removes_first_equal(evaluation.conn):
        losers = _first_equal(evaluation, losers, by_position)
    deduplicated = evaluation.deduplicated = evaluation.stage(
        sa.select(associations).select_from(associations.outerjoin(losers, keys_equal(
            (losers.c.a_eid, losers.c.a_cand_id, losers.c.a_rule_name, losers.c.a_asn_id), copy_key(associations))))
        .where(losers.c.a_eid.is_(None)), "asn3", ("product", "pool_id"))
    # same product, fewer members, no exposure in both with different roles: the smaller goes
    smaller, bigger = deduplicated.alias("p"), deduplicated.alias("q")
    smaller_count, bigger_count = counts.alias("cp"), counts.alias("cq")
    smaller_member, bigger_member = members.alias("mp"), members.alias("mq")
    # the (smaller, bigger) pairs of a product, then those sharing an exposure in different roles
    pairs = (sa.select(*(column.label("p_" + column.name) for column in copy_key(smaller)),
                       *(column.label("q_" + column.name) for column in copy_key(bigger)))
             .select_from(smaller.join(bigger, sa.and_(bigger.c.product == smaller.c.product,
                                                       bigger.c.pool_id == smaller.c.pool_id))
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
    seq = row_number().over(partition_by=[pruned.c.pool_id, pruned.c.asn_id, pruned.c.asn_type],  # per pool
                                    order_by=[pruned.c.cand_ord.desc(), pruned.c.made_at.desc(),
                                              pruned.c.row_no.desc(), pruned.c.rule_name.desc()])
    numbered = selection.written(evaluation, sa.select(pruned, seq.label("seq")))
    final = evaluation.sequenced = evaluation.stage(numbered, "asn5", ("eid", "cand_id", "rule_name", "asn_id"))
    # the association's target: the TARGETID of the exposure the pipeline made it with (see members), for
    # a nod group's the group's first nod (group_target)
    target = sa.func.first_value(members.c.targetid_text).over(
        partition_by=list(copy_key(members)), order_by=[sa.case((members.c.mgroup == 3, 1), else_=0), members.c.mord])
    return (sa.select(final.c.pool_id, final.c.asn_id, (final.c.prefix + final.c.rule_name).label("asn_rule"),
                      final.c.rule_name,
                      final.c.asn_type, zero_padded(final.c.program, 5).label("program"), final.c.product,
                      final.c.seq, final.c.eid, final.c.cand_id, final.c.cand_type,
                      sa.func.coalesce(final.c.group_target, target).label("target"), members.c.expname,
                      members.c.role.label("exptype"), members.c.exposerr, members.c.exposerr_text,
                      members.c.mid.label("exposure_id"), members.c.stem)
            .select_from(final.join(members, keys_equal(copy_key(members), copy_key(final))))
            .order_by(final.c.pool_id, final.c.asn_id, final.c.asn_type, final.c.seq, members.c.mgroup,
                      members.c.mord))


def _rule_order(name, by_position: bool):
    """What orders two rules of duplicates: the rule's name, or (``by_position``: the catalog's
    duplicate_rule_order 'position') its place in rules_level2b.py."""
    if by_position:
        return sa.select(rules.rule.c.position).where(rules.rule.c.name == name).scalar_subquery()
    return name


def removes_first_equal(conn: sa.Connection) -> bool:
    """The catalog in force says a duplicate is removed as the first association equal to it (jwst 1.12.0
    to 1.19.x: asn_parameter duplicate_removal = first_equal)."""
    return rules.parameter_value(conn, "duplicate_removal") == "first_equal"


def _first_equal(evaluation: Evaluation, losers, by_position: bool):
    """jwst 1.12.0 to 1.19.x (JP-3356 to JP-3516): the pipeline removes a duplicate with ``list.remove``, which
    takes the first association in its order (candidate id, then rule) that *equals* it, and association
    equality ignores the members' _rate/_rateints suffix (and the candidate id past its letter): the association
    removed for each loser is the first of those equal to it so, the loser itself when none is before it.
    The removals come one after another, each taking the first equal association still there: so the k losers
    of one class of equal associations remove the first k of that class, in that order (o001's duplicates
    c1000 and c1001 both go: jwst's pool_025 at 1.13.4-1.19.x). The class is named by its first association;
    the subset pruning's removals are not redirected so: no fixture tells those apart."""
    associations, members = evaluation.with_copies, evaluation.named_members
    counts = evaluation.member_counts
    ka, kc = associations.alias("la"), associations.alias("lc")
    na, nc = counts.alias("lna"), counts.alias("lnc")
    ma, mc = members.alias("lma"), members.alias("lmc")
    shared = (sa.select(*[c.label("a_" + c.name) for c in copy_key(ma)],
                        *[c.label("c_" + c.name) for c in copy_key(mc)], sa.func.count().label("n"))
              .select_from(losers.join(ma, keys_equal(copy_key(ma), tuple(losers.c)))
                           .join(mc, sa.and_(mc.c.member_name == ma.c.member_name, mc.c.role == ma.c.role,
                                             mc.c.pool_id == ma.c.pool_id)))
              .group_by(*copy_key(ma), *copy_key(mc))).subquery("loose_common")
    a_key = tuple(shared.c["a_" + n] for n in ("eid", "cand_id", "rule_name", "asn_id"))
    c_key = tuple(shared.c["c_" + n] for n in ("eid", "cand_id", "rule_name", "asn_id"))
    equal = (sa.select(*a_key, *c_key,
                       row_number().over(partition_by=list(a_key),
                                         order_by=[kc.c.asn_id, _rule_order(kc.c.rule_name, by_position), kc.c.row_no])
                       .label("rk"))
             .select_from(shared.join(ka, keys_equal(copy_key(ka), a_key)).join(kc, keys_equal(copy_key(kc), c_key))
                          .join(na, keys_equal(copy_key(na), a_key)).join(nc, keys_equal(copy_key(nc), c_key)))
             .where(na.c.n == shared.c.n, nc.c.n == shared.c.n, ka.c.asn_type == kc.c.asn_type,
                    ka.c.product == kc.c.product,
                    sa.func.substr(ka.c.asn_id, 1, 1) == sa.func.substr(kc.c.asn_id, 1, 1))).subquery("first_equal")
    loser = tuple(equal.c[n] for n in ("a_eid", "a_cand_id", "a_rule_name", "a_asn_id"))
    first = tuple(equal.c[n] for n in ("c_eid", "c_cand_id", "c_rule_name", "c_asn_id"))
    # each loser's place among the losers of its class (the class named by its first association)
    ranked = (sa.select(*loser, row_number().over(partition_by=list(first), order_by=list(loser)).label("r"))
              .where(equal.c.rk == 1).subquery("losers_ranked"))
    return (sa.select(*(c.label("a_" + c.name[2:]) for c in first)).distinct()
            .select_from(equal.join(ranked, keys_equal(tuple(ranked.c[n] for n in ("a_eid", "a_cand_id",
                                                                                   "a_rule_name", "a_asn_id")),
                                                      loser)))
            .where(equal.c.rk == ranked.c.r).cte("losers_removed"))
