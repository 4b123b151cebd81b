"""Set-based views: no subquery evaluated once per row.

Schema revision (no catalog version). Three views of 0018 computed a value per row
with a correlated subquery, which both planners run once per exposure or run:

- ``v_current_worklist`` found each exposure's latest work item with
  ``(SELECT max(w2.id) ... WHERE w2.exposure_id = s.exposure_id)``;
- ``v_unmatched`` tested ``NOT EXISTS (SELECT 1 FROM rule ...)`` per exposure (an
  anti-join on PostgreSQL, a subquery per row on SQLite);
- ``v_runs`` counted each run's work items with a scalar subquery.

Each now joins a grouped relation instead (the latest item per exposure, the known
EXP_TYPEs, the items per run): one pass over each table. Same columns, same rows,
same order of columns, so ``CREATE OR REPLACE VIEW`` keeps PostgreSQL's descriptions
(0019); SQLite drops and creates them. The downgrade restores 0018's definitions.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""
from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

HEAD_REVISION = "(SELECT cv.revision FROM catalog_version cv ORDER BY cv.seq DESC LIMIT 1)"
PREFIXES = (("NRC", "NIRCam"), ("MIR", "MIRI"), ("NRS", "NIRSpec"), ("NIS", "NIRISS"), ("FGS", "FGS"))
_instrument = "CASE substr(e.exp_type, 1, 3) " + " ".join(
    f"WHEN '{prefix}' THEN '{name}'" for prefix, name in PREFIXES) + " ELSE 'other' END"

_WORKLIST_COLUMNS = """
SELECT s.pool, s.source_line, s.filename, s.exp_type, s.instrument, s.exptype, s.asn_type, s.level2b_input,
       s.association, s.asn_rule, s.program, s.obs_num, s.table_level2b,
       wi.id AS work_item_id, wi.catalog_revision AS item_revision, wi.run_id AS item_run_id,
       wi.created_at AS issued_at,
       CASE WHEN wi.id IS NOT NULL AND wi.exposure_version = e.version AND wi.exptype = s.exptype
                 AND wi.asn_type = s.asn_type AND wi.level2b_input = s.level2b_input
                 AND wi.association = s.association AND wi.asn_rule = s.asn_rule
            THEN TRUE ELSE FALSE END AS item_up_to_date,
       """ + HEAD_REVISION + """ AS catalog_revision, s.answer_revision, s.answer_current,
       e.version AS exposure_version, wi.exposure_version AS item_exposure_version
FROM v_exposure_status s
JOIN exposure e ON e.id = s.exposure_id"""

_RUN_COLUMNS = """
SELECT r.id AS run_id, r.status, r.started_at, r.finished_at, r.catalog_revision, r.inputs,
       r.exposures_seen, r.exposures_new, r.exposures_changed, r.exposures_withdrawn, r.items_created,
       r.items_changed, r.items_withdrawn, r.exposures_unmatched,
       r.rows_rejected, r.items_reissued, r.reissued_by, r.output, r.error, r.host, r.pid,"""

_UNMATCHED_COLUMNS = f"""
SELECT p.name AS pool, e.source_line, e.filename, e.exp_type, {_instrument} AS instrument, e.program, e.obs_num
FROM exposure e
JOIN pool p ON p.id = e.pool_id"""

#: This revision's views.
VIEWS = {
    "v_current_worklist": _WORKLIST_COLUMNS + """
LEFT JOIN (SELECT w.exposure_id, max(w.id) AS id FROM work_item w WHERE w.withdrawn_at IS NULL
           GROUP BY w.exposure_id) latest ON latest.exposure_id = s.exposure_id
LEFT JOIN work_item wi ON wi.id = latest.id
WHERE s.level2b = TRUE
""",
    "v_unmatched": _UNMATCHED_COLUMNS + """
LEFT JOIN (SELECT DISTINCT r.exp_type FROM rule r) known ON known.exp_type = e.exp_type
WHERE e.withdrawn_at IS NULL AND known.exp_type IS NULL
""",
    "v_runs": _RUN_COLUMNS + """
       coalesce(held.items, 0) AS items_held
FROM run r
LEFT JOIN (SELECT w.run_id, count(*) AS items FROM work_item w GROUP BY w.run_id) held ON held.run_id = r.id
""",
}

#: 0018's definitions, frozen, for the downgrade.
PREVIOUS = {
    "v_current_worklist": _WORKLIST_COLUMNS + """
LEFT JOIN work_item wi ON wi.id = (SELECT max(w2.id) FROM work_item w2
                                   WHERE w2.exposure_id = s.exposure_id AND w2.withdrawn_at IS NULL)
WHERE s.level2b = TRUE
""",
    "v_unmatched": _UNMATCHED_COLUMNS + """
WHERE e.withdrawn_at IS NULL AND NOT EXISTS (SELECT 1 FROM rule r WHERE r.exp_type = e.exp_type)
""",
    "v_runs": _RUN_COLUMNS + """
       (SELECT count(*) FROM work_item w WHERE w.run_id = r.id) AS items_held
FROM run r
""",
}


def _replace(views: dict[str, str]) -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, sql in views.items():
        if postgresql:  # in place: the descriptions (COMMENT ON) stay
            op.execute(f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}")
        else:
            op.execute(f"DROP VIEW IF EXISTS {name}")
            op.execute(f"CREATE VIEW {name} AS {sql.strip()}")


def upgrade() -> None:
    _replace(VIEWS)


def downgrade() -> None:
    _replace(PREVIOUS)
