"""Stage 4: the associations (WFSS ones need a direct image), their members after imprint pruning,
the candidate policy, the discovery pass's copies, and the members' names - the one place that
names a Level 2b input (``_rate`` or ``_rateints``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import companions, pruning, rules
from .sql import association_key, keys_equal, zero_padded

if TYPE_CHECKING:
    from .evaluation import Evaluation


def stage(evaluation: Evaluation) -> None:
    """``associations``, ``all_members``, ``imprint_drops``, ``members``, ``kept``, ``with_copies`` and
    ``named_members``."""
    exposures, science, pairs, rule = evaluation.exposures, evaluation.science, evaluation.pairs, rules.rule
    direct = companions.direct_images(evaluation)
    # an exposure that joined, with its own type, an earlier science's association of a rule does not
    # start one of its own for that rule (the pipeline has already used it when it reaches it)
    # (one level deep: a science that itself joined an earlier one does not count)
    joiner = exposures.alias("xj")
    joins = (sa.select(pairs.c.eid, pairs.c.cand_id, pairs.c.rule_name, pairs.c.oid)
             .select_from(pairs.join(joiner, joiner.c.eid == pairs.c.oid))
             .where(pairs.c.source == "pool", pairs.c.role == "own", pairs.c.sci_row < joiner.c.row_no)).cte("joins")
    # (the tests "is there such a row" are anti-joins throughout: outer joins kept where nothing matched,
    #  planned set-based on both backends, where a correlated NOT EXISTS was a lookup per row)
    other_join = joins.alias("j2")
    by_unjoined = (sa.select(joins).select_from(joins.outerjoin(other_join, keys_equal(
        (other_join.c.oid, other_join.c.cand_id, other_join.c.rule_name), association_key(joins))))
        .where(other_join.c.oid.is_(None))).cte("joins_kept")
    joined_earlier = (sa.select(by_unjoined.c.oid.label("eid"), by_unjoined.c.cand_id, by_unjoined.c.rule_name)
                      .distinct().cte("joined_earlier"))
    associations = evaluation.associations = evaluation.stage(
        sa.select(science.c.eid, science.c.pool_id, science.c.cand_id, science.c.rule_name, rule.c.asn_type,
                  rule.c.wfss,
                  rule.c.rate_policy, direct.c.oid.label("direct_id"))
        .select_from(science.join(rule, rule.c.name == science.c.rule_name)
                     .outerjoin(direct, keys_equal(association_key(direct), association_key(science)))
                     .outerjoin(joined_earlier, keys_equal(association_key(joined_earlier), association_key(science))))
        .where(sa.or_(rule.c.wfss.is_(None), direct.c.oid.is_not(None)), joined_earlier.c.eid.is_(None)), "asn0")
    companion_row = exposures.alias("xo")
    all_members = evaluation.all_members = evaluation.stage(sa.union(
        sa.select(associations.c.eid, associations.c.cand_id, associations.c.rule_name,
                  associations.c.eid.label("mid"), sa.literal("science").label("role"),
                  sa.literal("science").label("source")),
        sa.select(pairs.c.eid, pairs.c.cand_id, pairs.c.rule_name, pairs.c.oid,
                  sa.case((pairs.c.role == "own", companion_row.c.sci_type), else_=pairs.c.role), pairs.c.source)
        .select_from(pairs.join(companion_row, companion_row.c.eid == pairs.c.oid))
        .where(pairs.c.role != "direct_image"),
    ), "members0")
    members = evaluation.members = evaluation.stage(_imprints_pruned(evaluation, all_members), "mem0")
    evaluation.kept = evaluation.stage(_kept_by_policy(evaluation, associations, members), "asn1")
    # the pipeline's discovery pass adds a copy of each parallel WFSS association; it tests the rule on the
    # row as it is (its whole ASN_CANDIDATE), not per candidate: the rule's 'discover' conditions, if any
    kept = evaluation.kept
    discovered = {name: test for (name, subject), test in evaluation.compiled.items() if subject == "discover"}
    tested = [sa.and_(kept.c.rule_name == name, kept.c.eid.in_(sa.select(exposures.c.eid).where(test)))
              for name, test in discovered.items()]
    copies = [sa.select(kept, sa.literal("candidate_").label("prefix"), kept.c.cand_id.label("asn_id"))]
    if evaluation.selection.discover:  # (not with -i nor --all-candidates)
        copies.append(sa.select(kept, sa.literal("discover_"), sa.literal("a3001")).where(
            kept.c.wfss == "parallel", sa.or_(kept.c.rule_name.not_in(list(discovered)), *tested)))
    with_copies = evaluation.with_copies = evaluation.stage(sa.union_all(*copies), "asn2")
    # duplicate removal's equality with the members' suffixes ignored looks members up by name, where it
    # is in force (jwst 1.12.0 to 1.19.x): without the index, a scan of the members per member (an hour at 1M)
    # (the pool last in each: members are compared within their pool)
    by_name = [("member_name", "role", "pool_id")] if pruning.removes_first_equal(evaluation.conn) else []
    evaluation.named_members = evaluation.stage(
        sa.union_all(_exposure_members(evaluation, with_copies, members, exposures),
                     *_level3_members(evaluation, with_copies, exposures)),
        "members", ("eid", "cand_id", "rule_name", "asn_id"), ("expname", "role", "pool_id"), *by_name)


def _kept_by_policy(evaluation: Evaluation, associations: sa.Table, members: sa.Table) -> sa.Select:
    """The associations the candidate-type policy keeps (the rule's own row for the candidate type,
    else the '*' row), with what orders and names them."""
    candidate_members, policy = evaluation.candidate_members, rules.candidate_policy
    policy_row, own_policy_row = policy.alias("cp"), policy.alias("cp2")
    science_row = evaluation.exposures.alias("xc")
    # the associations with a member added as a background (the pipeline's test reads the members' exptype
    # as added: not a science that is a background exposure itself, not the nods it re-types later),
    # joined, not looked up per association
    with_background = (sa.select(*association_key(members)).distinct()
                       .where(members.c.role == "background", members.c.source == "pool")).cte("with_background")
    has_background = with_background.c.eid.is_not(None)
    own_row = (sa.exists().where(own_policy_row.c.candidate_type == candidate_members.c.cand_type,
                                 own_policy_row.c.rule_name == associations.c.rule_name)
               .correlate_except(own_policy_row))
    kept = sa.exists().where(
        policy_row.c.candidate_type == candidate_members.c.cand_type,
        sa.or_(policy_row.c.rule_name == associations.c.rule_name,
               sa.and_(policy_row.c.rule_name == "*", sa.not_(own_row))),
        sa.or_(policy_row.c.id_pattern.is_(None), candidate_members.c.cand_id.like(policy_row.c.id_pattern)),
        sa.or_(policy_row.c.requirement == "always",
               sa.and_(policy_row.c.requirement == "background_member", has_background))
    ).correlate_except(policy_row)
    group = companions.nod_groups(evaluation)
    made_at = sa.case((group.c.row < science_row.c.row_no, group.c.row), else_=science_row.c.row_no)
    # a nod group's associations are split from the one made at its first nod: they all keep its target,
    # even where that nod is not a member (another TARGETID's nods overlap, from jwst 1.19.0)
    group_start = evaluation.exposures.alias("xw")
    return (sa.select(associations, candidate_members.c.cand_type, candidate_members.c.cand_ord,
                      science_row.c.row_no, made_at.label("made_at"), science_row.c.program,
                      science_row.c.tsovisit, science_row.c.stem.label("product"), science_row.c.targetid,
                      science_row.c.instrume, science_row.c.subarray,
                      group_start.c.targetid_text.label("group_target"))
            .select_from(associations.join(candidate_members,
                                           sa.and_(candidate_members.c.eid == associations.c.eid,
                                                   candidate_members.c.cand_id == associations.c.cand_id))
                         .join(science_row, science_row.c.eid == associations.c.eid)
                         .outerjoin(group, keys_equal(association_key(group), association_key(associations)))
                         .outerjoin(group_start, sa.and_(group.c.row.is_not(None), group_start.c.row_no == made_at,
                                                         group_start.c.pool_id == science_row.c.pool_id))
                         .outerjoin(with_background,
                                    keys_equal(association_key(with_background), association_key(associations))))
            .where(kept))


def _imprints_pruned(evaluation: Evaluation, members: sa.Table) -> sa.Select:
    """Members without the imprints the pipeline prunes (rules with ``imprint_pruning``); stages
    ``imprint_drops``.

    The science set is the science and, for nod rules, the group's other science nods. Imprints whose
    background flag differs from the science set's are left alone; among the others, when some share
    a target with the science set, those that do not are dropped; then, when there are more of them
    than sciences and some share a dither position with a science, those that share none are dropped.
    """
    key = association_key
    science_row, imprint_row = evaluation.exposures.alias("xsci"), evaluation.exposures.alias("ximp")
    rule = rules.rule
    science_set = (sa.select(*key(members), members.c.mid, science_row.c.bkgdtarg,
                             sa.func.coalesce(science_row.c.targetid, "").label("targetid"),
                             sa.func.coalesce(science_row.c.dithptin, "").label("dithptin"))
                   .select_from(members.join(science_row, science_row.c.eid == members.c.mid)
                                .join(rule, rule.c.name == members.c.rule_name))
                   .where(rule.c.imprint_pruning == sa.true(),
                          sa.or_(members.c.role == "science", members.c.source == "science"))
                   ).cte("sciset")
    background = (sa.select(*key(science_set), sa.func.count().label("n"),
                            sa.func.max(sa.case((science_set.c.bkgdtarg == "t", 1), else_=0)).label("bkg"))
                  .group_by(*key(science_set))).cte("sciset_flag")
    # the imprints examined: same background status as the science set
    examined = (sa.select(*key(members), members.c.mid, background.c.n,
                          sa.func.coalesce(imprint_row.c.targetid, "").label("targetid"),
                          sa.func.coalesce(imprint_row.c.dithptin, "").label("dithptin"))
                .select_from(members.join(imprint_row, imprint_row.c.eid == members.c.mid)
                             .join(background, keys_equal(key(background), key(members))))
                .where(members.c.role == "imprint",
                       sa.case((imprint_row.c.bkgdtarg == "t", 1), else_=0) == background.c.bkg)).cte("examined")
    targets = sa.select(*key(science_set), science_set.c.targetid).distinct().cte("s1")
    flagged = (sa.select(examined, sa.case((targets.c.eid.is_not(None), 1), else_=0).label("on_target"))
               .select_from(examined.outerjoin(targets, sa.and_(keys_equal(key(targets), key(examined)),
                                                                targets.c.targetid == examined.c.targetid)))
               ).cte("examined_t")
    any_on_target = (sa.select(*key(flagged), sa.func.max(flagged.c.on_target).label("any"))
                     .group_by(*key(flagged))).cte("any_on_target")
    kept_by_target = (sa.select(flagged).join(any_on_target, keys_equal(key(any_on_target), key(flagged)))
                      .where(sa.or_(any_on_target.c.any == 0, flagged.c.on_target == 1))).cte("kept1")
    dithers = sa.select(*key(science_set), science_set.c.dithptin).distinct().cte("s2")
    dithered = (sa.select(kept_by_target, sa.case((dithers.c.eid.is_not(None), 1), else_=0).label("on_dither"))
                .select_from(kept_by_target.outerjoin(dithers, sa.and_(
                    keys_equal(key(dithers), key(kept_by_target)), dithers.c.dithptin == kept_by_target.c.dithptin)))
                ).cte("kept1_d")
    per_association = (sa.select(*key(dithered), sa.func.count().label("n_imprints"),
                                 sa.func.max(dithered.c.on_dither).label("any"))
                       .group_by(*key(dithered))).cte("kept1_n")
    kept_by_dither = (sa.select(*key(dithered), dithered.c.mid)
                      .join(per_association, keys_equal(key(per_association), key(dithered)))
                      .where(sa.or_(sa.not_(sa.and_(dithered.c.n >= 1, dithered.c.n < per_association.c.n_imprints,
                                                    per_association.c.any == 1)),
                                    dithered.c.on_dither == 1))).cte("kept2")
    kept = kept_by_dither.alias("k2")
    drops = evaluation.imprint_drops = evaluation.stage(
        sa.select(*key(examined), examined.c.mid)
        .select_from(examined.outerjoin(kept, sa.and_(keys_equal(key(kept), key(examined)),
                                                      kept.c.mid == examined.c.mid)))
        .where(kept.c.mid.is_(None)), "imprint_drop")
    return (sa.select(members).select_from(members.outerjoin(drops, sa.and_(keys_equal(key(drops), key(members)),
                                                                            drops.c.mid == members.c.mid)))
            .where(drops.c.mid.is_(None)))


def level2b_input_name(evaluation: Evaluation, member_row, rate_policy, association_tsovisit):
    """``_rate`` or ``_rateints`` in place of ``_uncal``, as the pipeline names Level 2b inputs."""
    sets = evaluation.value_sets
    coronagraphic = sa.and_(rules.set_member(sets, "CORON", member_row.c.exp_type), rate_policy != "rate",
                            sa.not_(sa.and_(member_row.c.subarray == "full",
                                            rules.path_holds(member_row, "nrc_coron_no_occulter",
                                                             evaluation.optical_paths))))
    integrations = sa.and_(member_row.c.pntgtype == "science",
                           sa.not_(rules.set_member(sets, "ACQ", member_row.c.exp_type)),
                           sa.or_(coronagraphic, rules.set_member(sets, "RATEINTS_ALWAYS", member_row.c.exp_type),
                                  member_row.c.tsovisit == "t", association_tsovisit == "t"))
    filename = member_row.c.filename
    return sa.case((filename.like("%\\_uncal.%", escape="\\"),
                    sa.func.replace(filename, "_uncal.", sa.case((integrations, "_rateints."), else_="_rate."))),
                   else_=filename)


def _exposure_members(evaluation: Evaluation, associations, members, exposures):
    """The members that are exposures, with their Level 2b input names; each keeps its exposure's id
    (``mid``) and lower-cased stem.

    Their order in the file (``mgroup``, then ``mord``, the pool row): as the pipeline adds them, in
    pool order; but a rule whose sciences are one another's companions (nods) lists, as the pipeline's
    nod split does, the science first (0), the other nods (1), then the other members (2). WFSS level-3
    products come last (3). The first exposure member in pool order is the one the pipeline made the
    association (or the nod group it splits) with: its TARGETID is the association's ``target``.
    """
    member_row = exposures.alias("xm")
    with_nods = evaluation.conn.execute(sa.select(rules.companion.c.rule_name).distinct()
                                        .where(rules.companion.c.source == "science")).scalars().all()
    nods = associations.c.rule_name.in_(with_nods) if with_nods else sa.false()
    group = sa.case((sa.not_(nods), 0), (members.c.role == "science", 0), (members.c.source == "science", 1),
                    else_=2)
    return (sa.select(*association_key(associations), associations.c.asn_id, associations.c.pool_id, members.c.mid,
                      level2b_input_name(evaluation, member_row, associations.c.rate_policy,
                                         associations.c.tsovisit)
                      .label("expname"), members.c.role, group.label("mgroup"),
                      member_row.c.row_no.label("mord"), member_row.c.exposerr,
                      member_row.c.exposerr_text, member_row.c.targetid_text, member_row.c.stem,
                      member_row.c.stem.label("member_name"))
            .select_from(associations.join(members, keys_equal(association_key(members),
                                                               association_key(associations)))
                         .join(member_row, member_row.c.eid == members.c.mid)))


def _level3_members(evaluation: Evaluation, associations, exposures):
    """WFSS: the direct image's level-3 products (image, source catalog, segmentation map). Their names carry
    the subarray (when not full) for the WFSS kinds of value set SUBARRAY_IN_PRODUCT_NAME."""
    direct_row = exposures.alias("xdir")
    optical_filter, pupil = direct_row.c.opt_filter, direct_row.c.opt_pupil
    both = sa.case((optical_filter < pupil, optical_filter + "-" + pupil), else_=pupil + "-" + optical_filter)
    optics = sa.case((associations.c.instrume == "miri", sa.func.coalesce(direct_row.c.filter, "null")),
                     (sa.and_(optical_filter.is_not(None), pupil.is_not(None)), both),
                     else_=sa.func.coalesce(optical_filter, pupil, "clear"))
    # a parallel association's target: 000 for its candidate, and for its discovered copy without a TARGETID
    target = sa.case((sa.and_(associations.c.wfss == "parallel",
                              sa.or_(associations.c.prefix == "candidate_", associations.c.targetid.is_(None))), "000"),
                     else_=zero_padded(sa.func.coalesce(associations.c.targetid, ""), 3))
    named = rules.set_member(evaluation.value_sets, "SUBARRAY_IN_PRODUCT_NAME", associations.c.wfss)
    suffix = sa.case((sa.and_(named, associations.c.subarray != "full"),
                      "-" + associations.c.subarray), else_="")
    name = ("jw" + zero_padded(associations.c.program, 5) + "-" + associations.c.asn_id + "_t" + target + "_"
            + associations.c.instrume + "_" + optics + suffix)
    return [sa.select(*association_key(associations), associations.c.asn_id, associations.c.pool_id, sa.null(),
                      name + extension,
                      sa.literal(role), sa.literal(3), sa.literal(i), sa.null(), sa.null(), sa.null(), sa.null(),
                      name + extension)
            .select_from(associations.join(direct_row, direct_row.c.eid == associations.c.direct_id))
            for i, (extension, role) in enumerate([("_i2d.fits", "direct_image"), ("_cat.ecsv", "sourcecat"),
                                                   ("_segm.fits", "segmap")])]
