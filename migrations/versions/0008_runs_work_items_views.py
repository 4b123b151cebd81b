"""Scheduled runs: the run record, work items per (exposure, catalog revision), reporting views.

Schema revision (no catalog version): ``run`` records every ``l2rules run``;
``work_item`` holds the work items runs made, unique per (exposure, catalog
revision); the ``v_*`` views answer the reporting questions in plain SQL that
SQLite and PostgreSQL both run (see the README, "Reporting").

The views are frozen SQL, like any DDL: ``v_exposure_status`` is the SQL of
``l2rules.worklist.worklist_query(include_all=True)`` at the head rules, written
out by hand (tests/test_views.py checks the two agree). A later revision that
changes the work-list logic recreates the views; one that alters a table the
views read in SQLite batch mode (table rebuild) must drop the views first and
create them again after.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Frozen copies, as of this revision.
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
#: The exposure columns a rule condition can read: the text columns and FILENAME (as worklist.py).
CONDITION_COLUMNS = tuple(c for c in POOL_COLUMNS if c not in FLAG_COLUMNS and c != "exp_type")
TSO_ALWAYS = ("NRC_TSIMAGE", "NRC_TSGRISM", "NRS_BRIGHTOBJ")
FLAG_SPECIALS = (("is_psf", "PSF"), ("is_imprt", "IMPRINT"), ("bkgdtarg", "BACKGROUND"))
PREFIXES = (("NRC", "NIRCam"), ("MIR", "MIRI"), ("NRS", "NIRSpec"), ("NIS", "NIRISS"), ("FGS", "FGS"))
RUN_STATUSES = ("running", "succeeded", "failed")


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

VIEWS = {
    # The rules in force at the head catalog revision.
    "v_current_rules": f"""
SELECT r.instrument, r.exp_type, r.special, r.exptype, r.level2b, r.asn_type, r.note,
       {HEAD_REVISION} AS catalog_revision
FROM rule r
""",
    # Every loaded exposure with what the head rules make of it (worklist --all, in SQL).
    "v_exposure_status": f"""
WITH flagged AS (
    SELECT e.id AS exposure_id,
           CASE
{_flag_cases}
           ELSE '' END AS special
    FROM exposure e
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
""",
    # The current work list (head rules), with the latest work item a run made for each exposure.
    "v_current_worklist": f"""
SELECT s.pool, s.source_line, s.filename, s.exp_type, s.instrument, s.exptype, s.special, s.asn_type,
       s.level2b_input, s.program, s.obs_num, s.rule,
       wi.id AS work_item_id, wi.catalog_revision AS item_revision, wi.run_id AS item_run_id,
       wi.created_at AS issued_at,
       CASE WHEN wi.id IS NOT NULL AND wi.exptype = s.exptype AND wi.special = s.special
                 AND (wi.asn_type = s.asn_type OR (wi.asn_type IS NULL AND s.asn_type IS NULL))
                 AND wi.level2b_input = s.level2b_input AND wi.rule = s.rule
            THEN TRUE ELSE FALSE END AS item_up_to_date,
       {HEAD_REVISION} AS catalog_revision
FROM v_exposure_status s
LEFT JOIN work_item wi ON wi.id = (SELECT max(w2.id) FROM work_item w2 WHERE w2.exposure_id = s.exposure_id)
WHERE s.level2b = TRUE
""",
    # Exposures per instrument, exp_type and exptype (the role), selected or not.
    "v_exposure_counts": """
SELECT s.instrument, s.exp_type, s.exptype,
       sum(CASE WHEN s.level2b = TRUE THEN 1 ELSE 0 END) AS selected,
       sum(CASE WHEN s.level2b = TRUE THEN 0 ELSE 1 END) AS not_selected,
       count(*) AS exposures
FROM v_exposure_status s
GROUP BY s.instrument, s.exp_type, s.exptype
""",
    # Exposures whose EXP_TYPE the head rules do not know.
    "v_unmatched": """
SELECT s.pool, s.source_line, s.filename, s.exp_type, s.instrument, s.program, s.obs_num
FROM v_exposure_status s
WHERE s.rule IS NULL
""",
    # The run record, with the number of work items each run made that the catalog still holds.
    "v_runs": """
SELECT r.id AS run_id, r.status, r.started_at, r.finished_at, r.catalog_revision, r.inputs,
       r.exposures_seen, r.exposures_new, r.exposures_changed, r.items_created, r.exposures_unmatched,
       r.rows_rejected, r.items_reissued, r.reissued_by, r.output, r.error, r.host, r.pid,
       (SELECT count(*) FROM work_item w WHERE w.run_id = r.id) AS items_held
FROM run r
""",
}


def upgrade() -> None:
    op.create_table(
        "run",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("catalog_revision", sa.String(32), nullable=True),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("exposures_seen", sa.Integer, nullable=False),
        sa.Column("exposures_new", sa.Integer, nullable=False),
        sa.Column("exposures_changed", sa.Integer, nullable=False),
        sa.Column("items_created", sa.Integer, nullable=False),
        sa.Column("exposures_unmatched", sa.Integer, nullable=False),
        sa.Column("rows_rejected", sa.Integer, nullable=False),
        sa.Column("items_reissued", sa.Integer, nullable=False),
        sa.Column("reissued_by", sa.Integer, nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run"),
        sa.ForeignKeyConstraint(["catalog_revision"], ["catalog_version.revision"],
                                name="fk_run_catalog_revision_catalog_version"),
        sa.ForeignKeyConstraint(["reissued_by"], ["run.id"], name="fk_run_reissued_by_run"),
        sa.CheckConstraint(f"status IN ({_quoted(RUN_STATUSES)})", name="ck_run_status"),
    )
    op.create_index("ix_run_status", "run", ["status"])
    op.create_table(
        "work_item",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("exposure_id", sa.Integer, nullable=False),
        sa.Column("catalog_revision", sa.String(32), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exp_type", sa.String(40), nullable=False),
        sa.Column("exptype", sa.String(32), nullable=False),
        sa.Column("special", sa.String(16), nullable=False),
        sa.Column("asn_type", sa.String(32), nullable=True),
        sa.Column("level2b_input", sa.String(300), nullable=False),
        sa.Column("rule", sa.String(60), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_work_item"),
        sa.UniqueConstraint("exposure_id", "catalog_revision", name="uq_work_item_exposure_id_catalog_revision"),
        sa.ForeignKeyConstraint(["exposure_id"], ["exposure.id"], name="fk_work_item_exposure_id_exposure"),
        sa.ForeignKeyConstraint(["catalog_revision"], ["catalog_version.revision"],
                                name="fk_work_item_catalog_revision_catalog_version"),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name="fk_work_item_run_id_run"),
    )
    op.create_index("ix_work_item_run_id", "work_item", ["run_id"])
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql.strip()}")


def downgrade() -> None:
    _refuse_to_drop_data(("run", "work_item"))
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW {name}")
    op.drop_index("ix_work_item_run_id", table_name="work_item")
    op.drop_table("work_item")
    op.drop_index("ix_run_status", table_name="run")
    op.drop_table("run")


def _refuse_to_drop_data(tables: tuple[str, ...]) -> None:
    """Refuse (one line, nothing changed) to drop tables holding rows, unless -x drop_data=yes.

    A copy in each revision that drops data: revisions do not import one another.
    """
    from alembic import context
    from alembic.util import CommandError

    if context.is_offline_mode() or context.get_x_argument(as_dictionary=True).get("drop_data") == "yes":
        return  # (offline, the SQL is only written out: its reader runs it, or not)
    conn = op.get_bind()
    counts = {t: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one() for t in tables}
    held = ", ".join(f"{t} ({n} rows)" for t, n in counts.items() if n)
    if held:
        raise CommandError(f"downgrading below {revision} would drop {held}; nothing was changed; "
                           "to drop them, pass -x drop_data=yes to alembic "
                           "(drop_data=True to l2rules.migrate.downgrade)")
