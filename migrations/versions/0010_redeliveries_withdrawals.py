"""Pools as snapshots: exposure versions, withdrawn exposures and work items, new run counts.

Schema revision (no catalog version). A pool delivered again is the pool's new
state:

- ``exposure.version`` (1 when first loaded) goes up when a redelivery changes
  the exposure's values, and when a redelivery leaves it out; the loader
  maintains it.
- ``exposure.withdrawn_at``: when a redelivery of its pool left the exposure out
  (NULL while the pool holds it). Withdrawn exposures are on no work list.
- ``work_item.exposure_version``: the version of the exposure the item was
  issued for; the unique key becomes (exposure, catalog revision, exposure
  version), so a changed exposure gets a new item.
- ``work_item.withdrawn_at`` / ``withdrawn_by``: when, and by which run, the
  item left the work list because its exposure was withdrawn.
- ``run.exposures_withdrawn``, ``run.items_changed``, ``run.items_withdrawn``:
  the new counts of the run record.

The views that read these tables are dropped and created again (SQLite
rebuilds ``work_item`` to change its unique key, and no view may name a table
that is briefly missing): ``v_exposure_status`` leaves withdrawn exposures
out, ``v_current_worklist`` shows an exposure's latest item that is not
withdrawn and compares the exposure version, ``v_runs`` carries the new
counts. The SQL is frozen here (the view SQL of 0008 with those changes); the
downgrade restores 0008's.

Existing exposures are version 1 and existing items were issued for version 1.
The downgrade cannot keep what 0009 has no place for: of several items of one
(exposure, catalog revision) it keeps the latest, and withdrawals are
forgotten (a withdrawn exposure is back in its pool's inventory).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Frozen copies, as of this revision (the same as 0008's).
POOL_COLUMNS = (
    "filename", "obs_id", "program", "obs_num", "visit", "visit_id", "visitgrp", "visitype",
    "wfsvisit", "seq_id", "act_id", "exposure", "exp_type", "nexposur", "expcount", "instrume",
    "detector", "channel", "targetid", "targprop", "targname", "targtype", "template", "pntgtype",
    "pntg_seq", "targordn", "expspcin", "dithptin", "mostilno", "module", "filter", "pupil",
    "ditherid", "patttype", "pattstrt", "numdthpt", "pattsize", "subpxpns", "subpxpts", "patt_num",
    "subpxnum", "subpixel", "apername", "sdp_ver", "subarray", "grating", "fxd_slit", "band",
    "asn_candidate", "bkgdtarg", "is_imprt", "is_psf", "tsovisit", "exposerr", "msametfl",
    "msastate", "opmode", "lamp", "gwa_xtil", "gwa_ytil", "dms_note",
)
FLAG_COLUMNS = ("is_psf", "bkgdtarg", "is_imprt", "tsovisit")
CONDITION_COLUMNS = tuple(c for c in POOL_COLUMNS if c not in FLAG_COLUMNS and c != "exp_type")
TSO_ALWAYS = ("NRC_TSIMAGE", "NRC_TSGRISM", "NRS_BRIGHTOBJ")
FLAG_SPECIALS = (("is_psf", "PSF"), ("is_imprt", "IMPRINT"), ("bkgdtarg", "BACKGROUND"))
PREFIXES = (("NRC", "NIRCam"), ("MIR", "MIRI"), ("NRS", "NIRSpec"), ("NIS", "NIRISS"), ("FGS", "FGS"))
OLD_UNIQUE = "uq_work_item_exposure_id_catalog_revision"
NEW_UNIQUE = "uq_work_item_exposure_id_catalog_revision_exposure_version"
RUN_COUNTS = ("exposures_withdrawn", "items_changed", "items_withdrawn")


def _quoted(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


HEAD_REVISION = "(SELECT cv.revision FROM catalog_version cv ORDER BY cv.seq DESC LIMIT 1)"

_flag_cases = "\n".join(
    f"           WHEN e.{flag} = TRUE AND EXISTS (SELECT 1 FROM rule r0 WHERE r0.exp_type = e.exp_type "
    f"AND r0.special = '{special}') THEN '{special}'"
    for flag, special in FLAG_SPECIALS
)
_value_case = "CASE c.pool_column\n" + "\n".join(
    f"                    WHEN '{col}' THEN e.{col}" for col in CONDITION_COLUMNS
) + "\n                  END"
_instrument = "CASE substr(e.exp_type, 1, 3) " + " ".join(
    f"WHEN '{prefix}' THEN '{name}'" for prefix, name in PREFIXES) + " ELSE 'other' END"


def _exposure_status(current_only: bool) -> str:
    """v_exposure_status; ``current_only`` leaves out the exposures a redelivery withdrew (0010)."""
    where = "\n    WHERE e.withdrawn_at IS NULL" if current_only else ""
    return f"""
WITH flagged AS (
    SELECT e.id AS exposure_id,
           CASE
{_flag_cases}
           ELSE '' END AS special
    FROM exposure e{where}
),
matched AS (
    SELECT f.exposure_id, f.special, r.exp_type AS rule_exp_type, r.special AS rule_special,
           r.instrument, r.exptype, r.level2b, r.asn_type
    FROM flagged f
    JOIN exposure e ON e.id = f.exposure_id
    LEFT JOIN rule r ON r.exp_type = e.exp_type AND r.special = f.special
),
checked AS (
    SELECT m.exposure_id, c.id AS condition_id, c.operator,
           c.pool_column || ' ' || c.operator || CASE WHEN c.value IS NULL THEN '' ELSE ' ' || c.value END
               AS described,
           upper(c.value) AS wanted,
           {_value_case} AS got
    FROM matched m
    JOIN exposure e ON e.id = m.exposure_id
    JOIN rule_condition c ON c.valid_to IS NULL AND c.exp_type = m.rule_exp_type AND c.special = m.rule_special
),
failed AS (
    SELECT exposure_id, condition_id, described
    FROM checked
    WHERE NOT CASE
        WHEN operator = 'present' THEN got IS NOT NULL
        WHEN operator = 'equals' THEN got IS NOT NULL AND upper(got) = wanted
        WHEN operator = 'not_equals' THEN got IS NULL OR upper(got) <> wanted
        WHEN operator = 'in' THEN got IS NOT NULL AND ('|' || wanted || '|') LIKE ('%|' || upper(got) || '|%')
        WHEN operator = 'not_in' THEN got IS NULL OR ('|' || wanted || '|') NOT LIKE ('%|' || upper(got) || '|%')
        ELSE FALSE END
),
first_failed AS (
    SELECT f.exposure_id, f.described
    FROM failed f
    WHERE f.condition_id = (SELECT min(f2.condition_id) FROM failed f2 WHERE f2.exposure_id = f.exposure_id)
)
SELECT e.id AS exposure_id, p.name AS pool, e.source_line, e.filename, e.exp_type,
       CASE WHEN m.instrument IS NULL THEN {_instrument} ELSE m.instrument END AS instrument,
       m.exptype, m.special, m.asn_type,
       e.stem || CASE WHEN e.tsovisit = TRUE OR e.exp_type IN ({_quoted(TSO_ALWAYS)}) OR m.asn_type LIKE 'tso%'
                      THEN '_rateints.fits' ELSE '_rate.fits' END AS level2b_input,
       e.program, e.obs_num,
       CASE WHEN m.level2b = TRUE AND ff.described IS NULL THEN TRUE ELSE FALSE END AS level2b,
       CASE WHEN m.rule_special = '' THEN m.rule_exp_type ELSE m.rule_exp_type || '/' || m.rule_special END AS rule,
       CASE
           WHEN m.rule_exp_type IS NULL THEN 'no rule for exp_type ' || e.exp_type
           WHEN m.level2b <> TRUE THEN 'rule ' || CASE WHEN m.rule_special = '' THEN m.rule_exp_type
                                     ELSE m.rule_exp_type || '/' || m.rule_special END || ' says not processed'
           WHEN ff.described IS NOT NULL THEN 'rule ' || CASE WHEN m.rule_special = '' THEN m.rule_exp_type
                                     ELSE m.rule_exp_type || '/' || m.rule_special END
                                     || ' condition failed: ' || ff.described
           ELSE 'matched rule ' || CASE WHEN m.rule_special = '' THEN m.rule_exp_type
                                     ELSE m.rule_exp_type || '/' || m.rule_special END
       END AS reason
FROM exposure e
JOIN pool p ON p.id = e.pool_id
JOIN matched m ON m.exposure_id = e.id
LEFT JOIN first_failed ff ON ff.exposure_id = e.id
"""


_ITEM_MATCHES = """wi.exptype = s.exptype AND wi.special = s.special
                 AND (wi.asn_type = s.asn_type OR (wi.asn_type IS NULL AND s.asn_type IS NULL))
                 AND wi.level2b_input = s.level2b_input AND wi.rule = s.rule"""

_COUNTS_VIEW = """
SELECT s.instrument, s.exp_type, s.exptype,
       sum(CASE WHEN s.level2b = TRUE THEN 1 ELSE 0 END) AS selected,
       sum(CASE WHEN s.level2b = TRUE THEN 0 ELSE 1 END) AS not_selected,
       count(*) AS exposures
FROM v_exposure_status s
GROUP BY s.instrument, s.exp_type, s.exptype
"""
_UNMATCHED_VIEW = """
SELECT s.pool, s.source_line, s.filename, s.exp_type, s.instrument, s.program, s.obs_num
FROM v_exposure_status s
WHERE s.rule IS NULL
"""

#: The views this revision replaces, in creation order (a view after those it reads).
NEW_VIEWS = {
    "v_exposure_status": _exposure_status(current_only=True),
    # The current work list, with the exposure's latest work item that is not withdrawn; up to date when
    # it was issued for the exposure's current version and gives what the head rules give now.
    "v_current_worklist": f"""
SELECT s.pool, s.source_line, s.filename, s.exp_type, s.instrument, s.exptype, s.special, s.asn_type,
       s.level2b_input, s.program, s.obs_num, s.rule,
       wi.id AS work_item_id, wi.catalog_revision AS item_revision, wi.run_id AS item_run_id,
       wi.created_at AS issued_at,
       CASE WHEN wi.id IS NOT NULL AND wi.exposure_version = e.version AND {_ITEM_MATCHES}
            THEN TRUE ELSE FALSE END AS item_up_to_date,
       {HEAD_REVISION} AS catalog_revision,
       e.version AS exposure_version, wi.exposure_version AS item_exposure_version
FROM v_exposure_status s
JOIN exposure e ON e.id = s.exposure_id
LEFT JOIN work_item wi ON wi.id = (SELECT max(w2.id) FROM work_item w2
                                   WHERE w2.exposure_id = s.exposure_id AND w2.withdrawn_at IS NULL)
WHERE s.level2b = TRUE
""",
    "v_exposure_counts": _COUNTS_VIEW,
    "v_unmatched": _UNMATCHED_VIEW,
    "v_runs": """
SELECT r.id AS run_id, r.status, r.started_at, r.finished_at, r.catalog_revision, r.inputs,
       r.exposures_seen, r.exposures_new, r.exposures_changed, r.exposures_withdrawn, r.items_created,
       r.items_changed, r.items_withdrawn, r.exposures_unmatched,
       r.rows_rejected, r.items_reissued, r.reissued_by, r.output, r.error, r.host, r.pid,
       (SELECT count(*) FROM work_item w WHERE w.run_id = r.id) AS items_held
FROM run r
""",
}

#: 0008's SQL of the same views, for the downgrade.
OLD_VIEWS = {
    "v_exposure_status": _exposure_status(current_only=False),
    "v_current_worklist": f"""
SELECT s.pool, s.source_line, s.filename, s.exp_type, s.instrument, s.exptype, s.special, s.asn_type,
       s.level2b_input, s.program, s.obs_num, s.rule,
       wi.id AS work_item_id, wi.catalog_revision AS item_revision, wi.run_id AS item_run_id,
       wi.created_at AS issued_at,
       CASE WHEN wi.id IS NOT NULL AND {_ITEM_MATCHES}
            THEN TRUE ELSE FALSE END AS item_up_to_date,
       {HEAD_REVISION} AS catalog_revision
FROM v_exposure_status s
LEFT JOIN work_item wi ON wi.id = (SELECT max(w2.id) FROM work_item w2 WHERE w2.exposure_id = s.exposure_id)
WHERE s.level2b = TRUE
""",
    "v_exposure_counts": _COUNTS_VIEW,
    "v_unmatched": _UNMATCHED_VIEW,
    "v_runs": """
SELECT r.id AS run_id, r.status, r.started_at, r.finished_at, r.catalog_revision, r.inputs,
       r.exposures_seen, r.exposures_new, r.exposures_changed, r.items_created, r.exposures_unmatched,
       r.rows_rejected, r.items_reissued, r.reissued_by, r.output, r.error, r.host, r.pid,
       (SELECT count(*) FROM work_item w WHERE w.run_id = r.id) AS items_held
FROM run r
""",
}


def _drop_views() -> None:
    for name in reversed(list(NEW_VIEWS)):
        op.execute(f"DROP VIEW {name}")


def _create_views(views: dict[str, str]) -> None:
    for name, sql in views.items():
        op.execute(f"CREATE VIEW {name} AS {sql.strip()}")


def upgrade() -> None:
    _drop_views()
    # Existing exposures are their first version; ADD COLUMN with a default fills them (no table rebuild).
    op.add_column("exposure", sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")))
    op.add_column("exposure", sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
    for name in RUN_COUNTS:
        op.add_column("run", sa.Column(name, sa.Integer, nullable=False, server_default=sa.text("0")))
    with op.batch_alter_table("work_item") as batch:
        # Existing items were issued for version 1 of their exposure.
        batch.add_column(sa.Column("exposure_version", sa.Integer, nullable=False, server_default=sa.text("1")))
        batch.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("withdrawn_by", sa.Integer, nullable=True))
        batch.create_foreign_key("fk_work_item_withdrawn_by_run", "run", ["withdrawn_by"], ["id"])
        batch.drop_constraint(OLD_UNIQUE, type_="unique")
        batch.create_unique_constraint(NEW_UNIQUE, ["exposure_id", "catalog_revision", "exposure_version"])
    _create_views(NEW_VIEWS)


def downgrade() -> None:
    _drop_views()
    work_item = sa.table("work_item", sa.column("id", sa.Integer), sa.column("exposure_id", sa.Integer),
                         sa.column("catalog_revision", sa.String))
    # The old key allows one item per (exposure, catalog revision): the latest of each stays.
    later = sa.table("work_item", sa.column("id", sa.Integer), sa.column("exposure_id", sa.Integer),
                     sa.column("catalog_revision", sa.String)).alias("later")
    op.execute(work_item.delete().where(sa.exists().where(
        later.c.exposure_id == work_item.c.exposure_id, later.c.catalog_revision == work_item.c.catalog_revision,
        later.c.id > work_item.c.id)))
    with op.batch_alter_table("work_item") as batch:
        batch.drop_constraint(NEW_UNIQUE, type_="unique")
        batch.create_unique_constraint(OLD_UNIQUE, ["exposure_id", "catalog_revision"])
        batch.drop_constraint("fk_work_item_withdrawn_by_run", type_="foreignkey")
        batch.drop_column("withdrawn_by")
        batch.drop_column("withdrawn_at")
        batch.drop_column("exposure_version")
    # SQLite (3.35+) drops a column in place: no rebuild of tables other tables refer to.
    for name in reversed(RUN_COUNTS):
        op.drop_column("run", name)
    op.drop_column("exposure", "withdrawn_at")
    op.drop_column("exposure", "version")
    _create_views(OLD_VIEWS)
