"""Stage 2: the rules whose science conditions an exposure meets, then per candidate.

The conditions read the exposure only, so they are evaluated once per exposure, not per candidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import rules

if TYPE_CHECKING:
    from .evaluation import Evaluation


def stage(evaluation: Evaluation) -> None:
    """``applicable``, ``science_rules`` and ``science``: some alternative of the rule's science conditions holds."""
    exposures, rule, condition = evaluation.exposures, rules.rule, rules.condition
    # (the (exposure, rule) pairs are staged first: joined with the conditions at once, planners
    #  would test the exposure type set once per condition instead of once per rule)
    applicable = evaluation.applicable = evaluation.stage(
        sa.select(exposures.c.eid, rule.c.name.label("rule_name")).select_from(
            exposures.join(rule, sa.or_(rule.c.science_set.is_(None),
                                        rules.in_set(rule.c.science_set, exposures.c.exp_type)))), "applicable")
    evaluated = (sa.select(exposures.c.eid, applicable.c.rule_name, condition.c.alt,
                           rules.condition_ok(exposures, condition.c, evaluation.condition_columns).label("ok"))
                 .select_from(applicable.join(exposures, exposures.c.eid == applicable.c.eid)
                              .join(condition, sa.and_(condition.c.rule_name == applicable.c.rule_name,
                                                       condition.c.subject == "science")))
                 ).cte("cv")
    science_rules = evaluation.science_rules = evaluation.stage(
        rules.holding(evaluated, evaluated.c.eid, evaluated.c.rule_name), "sci_rule")
    candidate_members = evaluation.candidate_members
    evaluation.science = evaluation.stage(
        sa.select(candidate_members.c.eid, candidate_members.c.cand_id, science_rules.c.rule_name)
        .join(science_rules, science_rules.c.eid == candidate_members.c.eid), "sci", ("cand_id", "rule_name"))
