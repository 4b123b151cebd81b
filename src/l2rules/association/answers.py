"""Stage 6: each exposure's answer, from the associations made - what the work list and the stored
answers (``level2b_answer``) hold, made in SQL, where it was a dict per exposure in Python (at 1M
exposures, a third of a run's time and most of its memory).

Per exposure that is a member of some association: its member types (``exptype``) and, for the
associations it is the science of, their asn_types, its Level 2b input names, the association files
and their rules - each the distinct values, sorted as Python sorts text (by code point) and
';'-joined - and how many distinct (asn_type, input, file, rule) it is the science of (``science_of``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from .sql import copy_key, joined_text, keys_equal, row_number, zero_padded

if TYPE_CHECKING:
    from .evaluation import Evaluation

#: The answer's ';'-joined columns, in the order of the columns of ``answers``.
JOINED = ("exptype", "asn_type", "level2b_input", "association", "asn_rule")
#: A field with at most this many distinct values (1 or 2) is joined from its least and greatest; one with
#: more, from its values ranked (0: every field ranked, as a test checks both ways).
FROM_LEAST_AND_GREATEST = 2


def association_file(association) -> sa.ColumnElement[str]:
    """The association's file name, as ``Association.file_name()`` makes it (no version id)."""
    # (a pool without PROGRAM: the file is named 'jwNone-...', as Python formats the missing value)
    program = sa.func.coalesce(zero_padded(association.c.program, 5), "None")
    return ("jw" + program + "-" + association.c.asn_id + "_"
            + association.c.asn_type + "_" + zero_padded(sa.cast(association.c.seq, sa.Text), 5) + "_asn.json")


def stage(evaluation: Evaluation) -> sa.Table:
    """``answers``: one row per exposure that is a member of an association made (after ``pruning``)."""
    made, members = evaluation.sequenced, evaluation.named_members
    member_of = made.join(members, keys_equal(copy_key(members), copy_key(made)))
    science = sa.and_(members.c.role == "science", members.c.mid.is_not(None))
    values = {
        "exptype": members.c.role,
        "asn_type": sa.case((science, made.c.asn_type)),
        "level2b_input": sa.case((science, members.c.expname)),
        "association": sa.case((science, association_file(made))),
        "asn_rule": sa.case((science, made.c.prefix + made.c.rule_name)),
    }
    postgresql = evaluation.conn.dialect.name == "postgresql"

    def ordered(value):  # as Python orders text: by code point, whatever the database's collation
        return value.collate("C") if postgresql else value

    # Each field's distinct values per exposure: the least, the greatest and how many. Most exposures have
    # one or two, joined from those; the few with more are ranked below.
    entry = sa.case((science, joined_text(made.c.asn_type, members.c.expname, association_file(made),
                                           made.c.prefix, made.c.rule_name)))
    summary = evaluation.stage(
        sa.select(members.c.mid.label("exposure_id"),
                  *(aggregate(ordered(value)).label(f"{name}_{suffix}") for name, value in values.items()
                    for suffix, aggregate in (("lo", sa.func.min), ("hi", sa.func.max))),
                  *(sa.func.count(sa.distinct(value)).label(f"{name}_n") for name, value in values.items()),
                  sa.func.count(sa.distinct(entry)).label("science_of"))
        .select_from(member_of).where(members.c.mid.is_not(None)).group_by(members.c.mid),
        "answer_summary", ("exposure_id",))
    most = FROM_LEAST_AND_GREATEST
    many = sa.or_(*(summary.c[f"{name}_n"] > most for name in values))
    wide = None  # (the ranked values only where some exposure needs them: they cost as much as the rest)
    if evaluation.conn.execute(sa.select(sa.func.count()).select_from(summary).where(many)).scalar():
        wide = _ranked_values(evaluation, member_of, summary, values, most, ordered)

    def joined(name: str) -> sa.ColumnElement:
        least, greatest, count = (summary.c[f"{name}_{suffix}"] for suffix in ("lo", "hi", "n"))
        pair = sa.case((count == 2, least + ";" + greatest), else_=least)
        return (pair if wide is None else sa.case((count > most, wide.c[name]), else_=pair)).label(name)

    joins = summary if wide is None else summary.outerjoin(wide, sa.and_(many,
                                                                          wide.c.exposure_id == summary.c.exposure_id))
    answers = evaluation.answers = evaluation.stage(
        sa.select(summary.c.exposure_id, *(joined(name) for name in JOINED), summary.c.science_of)
        .select_from(joins), "answers", ("exposure_id",))
    return answers


def _ranked_values(evaluation: Evaluation, member_of, summary: sa.Table, values: dict, most: int, ordered
                   ) -> sa.Subquery:
    """Per exposure with more than ``most`` values in some field: those fields' values, sorted, ';'-joined."""
    members = evaluation.named_members
    pairs = sa.union(*(sa.select(members.c.mid.label("exposure_id"), sa.literal(name).label("field"),
                                 value.label("value"))
                       .select_from(member_of.join(summary, summary.c.exposure_id == members.c.mid))
                       .where(summary.c[f"{name}_n"] > most, value.is_not(None))
                       for name, value in values.items())).subquery("answer_values")
    ranked = evaluation.stage(
        sa.select(pairs.c.exposure_id, pairs.c.field, pairs.c.value, row_number().over(
            partition_by=[pairs.c.exposure_id, pairs.c.field], order_by=ordered(pairs.c.value)).label("n")),
        "answer_values", ("exposure_id",))
    widest = dict(evaluation.conn.execute(sa.select(ranked.c.field, sa.func.max(ranked.c.n)).group_by(ranked.c.field))
                  .all())

    def ranked_text(name: str) -> sa.ColumnElement:
        # a pivot of the ranked values: SQLite (before 3.44) has no ordered string aggregate
        parts = [sa.func.max(sa.case((sa.and_(ranked.c.field == name, ranked.c.n == k), ranked.c.value)))
                 for k in range(1, (widest.get(name) or 1) + 1)]
        text = parts[0]
        for part in parts[1:]:
            text = text + sa.func.coalesce(";" + part, "")
        return text.label(name)

    return (sa.select(ranked.c.exposure_id, *(ranked_text(name) for name in JOINED))
            .group_by(ranked.c.exposure_id).subquery("wide"))

