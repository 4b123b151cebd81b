"""The work list is the pipeline's answer: stored answers per exposure, work items and views from them.

Schema revision (no catalog version). Until now the views and ``l2rules run``
work items came from the published table alone (a frozen SQL copy of the work
list in the views), while ``worklist`` gives the pipeline's answer. From here on
one answer serves all of them:

- ``level2b_answer``: per exposure, what the pipeline makes of it at a catalog
  revision (``catalog_revision``) for one version of the exposure
  (``exposure_version``): ``level2b`` (the science of some Level 2b
  association), its member types (``exptype``), asn_type(s), Level 2b input,
  association file(s) and rule(s), ';'-joined, and ``reason``; with the
  published table's verdict beside it (``table_*``). ``l2rules run`` writes it
  for every pool whose answers are missing or behind (an exposure changed, or
  the head revision moved); the SQL of the answers lives in the application,
  not frozen in a view.
- ``work_item``: ``rule`` becomes ``asn_rule`` and an item names its
  ``association`` file(s); the multi-valued columns (``exptype``, ``asn_type``,
  ``level2b_input``, ``asn_rule``) become text; ``special`` (the published
  table's notion) goes.
- The views read the stored answers: ``v_exposure_status`` (one row per
  current exposure, ``answer_current`` false when its answer is missing or
  behind), ``v_current_worklist``, ``v_exposure_counts`` (with
  ``table_selected``), ``v_unmatched`` (EXP_TYPEs no published rule knows) and
  ``v_runs`` (unchanged).

The downgrade restores 0010's views and work item columns: ``asn_rule`` back
into ``rule`` (cut to 60 characters), ``special`` as '' and the association
forgotten; the stored answers are dropped.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

HEAD_REVISION = "(SELECT cv.revision FROM catalog_version cv ORDER BY cv.seq DESC LIMIT 1)"
PREFIXES = (("NRC", "NIRCam"), ("MIR", "MIRI"), ("NRS", "NIRSpec"), ("NIS", "NIRISS"), ("FGS", "FGS"))
_instrument = "CASE substr(e.exp_type, 1, 3) " + " ".join(
    f"WHEN '{prefix}' THEN '{name}'" for prefix, name in PREFIXES) + " ELSE 'other' END"
_NOT_EVALUATED = "not evaluated at the head catalog revision yet: `l2rules run` evaluates it"

#: The views of this revision, in creation order (a view after those it reads).
VIEWS = {
    # Every current exposure with the stored answer: what the pipeline makes of it, the published table beside.
    "v_exposure_status": f"""
SELECT e.id AS exposure_id, p.name AS pool, e.source_line, e.filename, e.exp_type, {_instrument} AS instrument,
       a.exptype, a.asn_type, a.level2b_input, a.association, a.asn_rule, e.program, e.obs_num,
       a.level2b,
       CASE WHEN a.exposure_id IS NULL THEN '{_NOT_EVALUATED}' ELSE a.reason END AS reason,
       a.table_level2b, a.table_asn_type, a.table_rule, a.table_reason,
       a.catalog_revision AS answer_revision,
       CASE WHEN a.exposure_id IS NOT NULL AND a.exposure_version = e.version
                 AND a.catalog_revision = {HEAD_REVISION} THEN TRUE ELSE FALSE END AS answer_current
FROM exposure e
JOIN pool p ON p.id = e.pool_id
LEFT JOIN level2b_answer a ON a.exposure_id = e.id
WHERE e.withdrawn_at IS NULL
""",
    # The current work list, with the exposure's latest work item that is not withdrawn; up to date when it
    # was issued for the exposure's current version and gives what the stored answer gives.
    "v_current_worklist": f"""
SELECT s.pool, s.source_line, s.filename, s.exp_type, s.instrument, s.exptype, s.asn_type, s.level2b_input,
       s.association, s.asn_rule, s.program, s.obs_num, s.table_level2b,
       wi.id AS work_item_id, wi.catalog_revision AS item_revision, wi.run_id AS item_run_id,
       wi.created_at AS issued_at,
       CASE WHEN wi.id IS NOT NULL AND wi.exposure_version = e.version AND wi.exptype = s.exptype
                 AND wi.asn_type = s.asn_type AND wi.level2b_input = s.level2b_input
                 AND wi.association = s.association AND wi.asn_rule = s.asn_rule
            THEN TRUE ELSE FALSE END AS item_up_to_date,
       {HEAD_REVISION} AS catalog_revision, s.answer_revision, s.answer_current,
       e.version AS exposure_version, wi.exposure_version AS item_exposure_version
FROM v_exposure_status s
JOIN exposure e ON e.id = s.exposure_id
LEFT JOIN work_item wi ON wi.id = (SELECT max(w2.id) FROM work_item w2
                                   WHERE w2.exposure_id = s.exposure_id AND w2.withdrawn_at IS NULL)
WHERE s.level2b = TRUE
""",
    "v_exposure_counts": """
SELECT s.instrument, s.exp_type, s.exptype,
       sum(CASE WHEN s.level2b = TRUE THEN 1 ELSE 0 END) AS selected,
       sum(CASE WHEN s.level2b = TRUE THEN 0 ELSE 1 END) AS not_selected,
       sum(CASE WHEN s.table_level2b = TRUE THEN 1 ELSE 0 END) AS table_selected,
       count(*) AS exposures
FROM v_exposure_status s
GROUP BY s.instrument, s.exp_type, s.exptype
""",
    "v_unmatched": f"""
SELECT p.name AS pool, e.source_line, e.filename, e.exp_type, {_instrument} AS instrument, e.program, e.obs_num
FROM exposure e
JOIN pool p ON p.id = e.pool_id
WHERE e.withdrawn_at IS NULL AND NOT EXISTS (SELECT 1 FROM rule r WHERE r.exp_type = e.exp_type)
""",
    "v_runs": """
SELECT r.id AS run_id, r.status, r.started_at, r.finished_at, r.catalog_revision, r.inputs,
       r.exposures_seen, r.exposures_new, r.exposures_changed, r.exposures_withdrawn, r.items_created,
       r.items_changed, r.items_withdrawn, r.exposures_unmatched,
       r.rows_rejected, r.items_reissued, r.reissued_by, r.output, r.error, r.host, r.pid,
       (SELECT count(*) FROM work_item w WHERE w.run_id = r.id) AS items_held
FROM run r
""",
}

# --- 0010's views, frozen, for the downgrade -----------------------------------------------------

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


def _exposure_status_0010() -> str:
    """0010's v_exposure_status: the published table's verdict, in SQL."""
    where = "\n    WHERE e.withdrawn_at IS NULL"
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

#: 0010's views, for the downgrade, in creation order (a view after those it reads).
VIEWS_0010 = {
    "v_exposure_status": _exposure_status_0010(),
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
    "v_runs": VIEWS["v_runs"],  # unchanged by this revision
}


def _drop_views() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def _create_views(views: dict[str, str]) -> None:
    for name, sql in views.items():
        op.execute(f"CREATE VIEW {name} AS {sql.strip()}")


def upgrade() -> None:
    _drop_views()
    op.create_table(
        "level2b_answer",
        sa.Column("exposure_id", sa.Integer, sa.ForeignKey("exposure.id"), primary_key=True),
        sa.Column("exposure_version", sa.Integer, nullable=False),
        sa.Column("catalog_revision", sa.String(32), sa.ForeignKey("catalog_version.revision"), nullable=False),
        sa.Column("level2b", sa.Boolean, nullable=False),
        sa.Column("exptype", sa.Text, nullable=True),
        sa.Column("asn_type", sa.Text, nullable=True),
        sa.Column("level2b_input", sa.Text, nullable=True),
        sa.Column("association", sa.Text, nullable=True),
        sa.Column("asn_rule", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("table_level2b", sa.Boolean, nullable=False),
        sa.Column("table_asn_type", sa.String(32), nullable=True),
        sa.Column("table_rule", sa.String(60), nullable=True),
        sa.Column("table_reason", sa.Text, nullable=True),
    )
    with op.batch_alter_table("work_item") as batch:
        batch.alter_column("rule", new_column_name="asn_rule", existing_type=sa.String(60), type_=sa.Text,
                           existing_nullable=False)
        batch.alter_column("exptype", existing_type=sa.String(32), type_=sa.Text, existing_nullable=False)
        batch.alter_column("asn_type", existing_type=sa.String(32), type_=sa.Text, existing_nullable=True)
        batch.alter_column("level2b_input", existing_type=sa.String(300), type_=sa.Text, existing_nullable=False)
        batch.add_column(sa.Column("association", sa.Text, nullable=True))
        batch.drop_column("special")
    _create_views(VIEWS)


def downgrade() -> None:
    _drop_views()
    item = sa.table("work_item", sa.column("asn_rule", sa.Text), sa.column("exptype", sa.Text),
                    sa.column("asn_type", sa.Text), sa.column("level2b_input", sa.Text))
    # 0010's widths: an item of several associations keeps the first 32/60/300 characters of its lists.
    op.execute(item.update().values(asn_rule=sa.func.substr(item.c.asn_rule, 1, 60),
                                    exptype=sa.func.substr(item.c.exptype, 1, 32),
                                    asn_type=sa.func.substr(item.c.asn_type, 1, 32),
                                    level2b_input=sa.func.substr(item.c.level2b_input, 1, 300)))
    with op.batch_alter_table("work_item") as batch:
        batch.add_column(sa.Column("special", sa.String(16), nullable=False, server_default=""))
        batch.drop_column("association")
        batch.alter_column("level2b_input", existing_type=sa.Text, type_=sa.String(300), existing_nullable=False)
        batch.alter_column("asn_type", existing_type=sa.Text, type_=sa.String(32), existing_nullable=True)
        batch.alter_column("exptype", existing_type=sa.Text, type_=sa.String(32), existing_nullable=False)
        batch.alter_column("asn_rule", new_column_name="rule", existing_type=sa.Text, type_=sa.String(60),
                           existing_nullable=False)
    with op.batch_alter_table("work_item") as batch:
        batch.alter_column("special", existing_type=sa.String(16), server_default=None, existing_nullable=False)
    op.drop_table("level2b_answer")
    _create_views(VIEWS_0010)
