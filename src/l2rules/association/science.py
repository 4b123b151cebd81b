"""Stage 2: the rules whose science conditions an exposure meets, then per candidate.

The conditions read the exposure only, so they are evaluated once per exposure, not per candidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import rules
from .sql import union_all

if TYPE_CHECKING:
    from .evaluation import Evaluation


def stage(evaluation: Evaluation) -> None:
    """``science_rules`` and ``science``: the rule takes the exposure's type, and some alternative of its
    science conditions holds (a rule without science conditions takes none)."""
    exposures, rule, conn = evaluation.exposures, rules.rule, evaluation.conn
    compiled, sets = evaluation.compiled, evaluation.value_sets
    takes = [sa.select(exposures.c.eid, sa.literal(name, sa.String).label("rule_name")).where(
                 rules.in_set_where(sets, science_set, exposures.c.exp_type),
                 compiled[(name, "science")])
             for name, science_set in conn.execute(sa.select(rule.c.name, rule.c.science_set).order_by(rule.c.name))
             if (name, "science") in compiled]
    science_rules = evaluation.science_rules = evaluation.stage(union_all(exposures, takes, "rule_name"), "sci_rule")
    candidate_members = evaluation.candidate_members
    evaluation.science = evaluation.stage(
        sa.select(candidate_members.c.eid, candidate_members.c.pool_id, candidate_members.c.cand_id,
                  science_rules.c.rule_name)
        .join(science_rules, science_rules.c.eid == candidate_members.c.eid), "sci",
        ("cand_id", "rule_name", "pool_id"), ("rule_name", "cand_id", "pool_id"))

