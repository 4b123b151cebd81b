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

from .sql import copy_key, keys_equal, row_number, zero_padded

if TYPE_CHECKING:
    from .evaluation import Evaluation

#: The answer's ';'-joined columns, in the order of the columns of ``answers``.
JOINED = ("exptype", "asn_type", "level2b_input", "association", "asn_rule")


def association_file(association) -> sa.ColumnElement[str]:
    """The association's file name, as ``Association.file_name()`` makes it (no version id)."""
    return ("jw" + zero_padded(association.c.program, 5) + "-" + association.c.asn_id + "_"
            + association.c.asn_type + "_" + zero_padded(sa.cast(association.c.seq, sa.Text), 5) + "_asn.json")


def stage(evaluation: Evaluation) -> sa.Table:
    """``answers``: one row per exposure that is a member of an association made (after ``pruning``)."""
    made, members = evaluation.sequenced, evaluation.named_members
    member_of = made.join(members, keys_equal(copy_key(members), copy_key(made)))
    science = sa.and_(members.c.role == "science", members.c.mid.is_not(None))
    values = {
        "exptype": (members.c.role, members.c.mid.is_not(None)),
        "asn_type": (made.c.asn_type, science),
        "level2b_input": (members.c.expname, science),
        "association": (association_file(made), science),
        "asn_rule": (made.c.prefix + made.c.rule_name, science),
    }
    pairs = sa.union(*(sa.select(members.c.mid.label("exposure_id"), sa.literal(name).label("field"),
                                 value.label("value")).select_from(member_of).where(where)
                       for name, (value, where) in values.items())).subquery("answer_values")
    ordered = pairs.c.value.collate("C") if evaluation.conn.dialect.name == "postgresql" else pairs.c.value
    ranked = evaluation.stage(
        sa.select(pairs.c.exposure_id, pairs.c.field, pairs.c.value, row_number().over(
            partition_by=[pairs.c.exposure_id, pairs.c.field], order_by=ordered).label("n")),
        "answer_values", ("exposure_id",))
    widest = dict(evaluation.conn.execute(sa.select(ranked.c.field, sa.func.max(ranked.c.n)).group_by(ranked.c.field))
                  .all())
    entries = (sa.select(members.c.mid.label("exposure_id"), made.c.asn_type, members.c.expname,
                         association_file(made).label("association"), made.c.prefix, made.c.rule_name)
               .select_from(member_of).where(science).distinct().subquery("science_entries"))
    counted = (sa.select(entries.c.exposure_id, sa.func.count().label("science_of"))
               .group_by(entries.c.exposure_id).subquery("science_counts"))

    def joined(name: str) -> sa.ColumnElement:
        # a pivot of the ranked values: SQLite (before 3.44) has no ordered string aggregate
        parts = [sa.func.max(sa.case((sa.and_(ranked.c.field == name, ranked.c.n == k), ranked.c.value)))
                 for k in range(1, (widest.get(name) or 1) + 1)]
        text = parts[0]
        for part in parts[1:]:
            text = text + sa.func.coalesce(";" + part, "")
        return text.label(name)

    answers = evaluation.answers = evaluation.stage(
        sa.select(ranked.c.exposure_id, *(joined(name) for name in JOINED),
                  sa.func.coalesce(sa.func.max(counted.c.science_of), 0).label("science_of"))
        .select_from(ranked.outerjoin(counted, counted.c.exposure_id == ranked.c.exposure_id))
        .group_by(ranked.c.exposure_id), "answers", ("exposure_id",))
    return answers
