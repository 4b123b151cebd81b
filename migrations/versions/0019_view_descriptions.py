"""Descriptions of the views and their columns for psql's ``\\d+`` (``COMMENT ON``).

Schema revision (no catalog version). PostgreSQL keeps a description for each
view and each of its columns; SQLite has no place for them, so on SQLite this
revision does nothing. A column name means one thing in every view (one name
per concept); the few that depend on their view say so in ``VIEW_COLUMNS``.
A later revision that creates a view again describes it again (a view made anew
has no description). The downgrade removes the descriptions.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

VIEWS = {
    "v_current_rules": "The published Level 2b rules table as in force at the head catalog revision: one row per "
                       "(exp_type, special).",
    "v_exposure_status": "Every loaded exposure no redelivery withdrew, with the pipeline's answer as the last "
                         "run stored it (level2b_answer) and the published table's verdict beside it.",
    "v_current_worklist": "The exposures the pipeline selects for Level 2b, each with its latest work item that "
                          "is not withdrawn.",
    "v_exposure_counts": "Exposures per instrument, EXP_TYPE and member types: selected by the pipeline or not, "
                         "and by the published table alone.",
    "v_unmatched": "Loaded exposures whose EXP_TYPE no rule of the published table knows.",
    "v_runs": "The run record of `l2rules run`, one row per run, with how many of its work items remain.",
}

#: One description per column name, whatever view it is in.
COLUMNS = {
    "pool": "The pool (inventory) the exposure was loaded from, by name.",
    "source_line": "The line of the pool file the exposure came from.",
    "filename": "The exposure's FILENAME (the _uncal file).",
    "exp_type": "The exposure's EXP_TYPE.",
    "instrument": "The instrument, from the EXP_TYPE prefix (NIRCam, MIRI, NIRSpec, NIRISS, FGS, other).",
    "exptype": "The member types (exptype) the exposure has in its associations, ';'-joined (science, "
               "background, imprint, ...); NULL when it is a member of none.",
    "asn_type": "The association type(s) of the Level 2b associations the exposure is the science of, ';'-joined.",
    "level2b_input": "The Level 2b input product name(s) (_rate.fits or _rateints.fits), ';'-joined.",
    "association": "The association file(s) the exposure is the science of, ';'-joined.",
    "asn_rule": "The pipeline's association rule(s) that made them, ';'-joined.",
    "program": "The exposure's PROGRAM.",
    "obs_num": "The exposure's observation number.",
    "level2b": "True when the pipeline makes the exposure the science of a Level 2b association.",
    "reason": "Why the exposure is, or is not, selected.",
    "table_level2b": "True when the published table alone would process the exposure.",
    "table_asn_type": "The published table's asn_type for the exposure.",
    "table_rule": "The published table's rule for the exposure (EXP_TYPE, or EXP_TYPE/special).",
    "table_reason": "The published table's reason (matched rule, no rule, condition failed).",
    "answer_revision": "The catalog revision the stored answer was evaluated at.",
    "answer_current": "True when the stored answer is for the exposure's current version at the head revision; "
                      "false until the next `l2rules run` evaluates it.",
    "exposure_id": "The exposure's id (exposure.id).",
    "work_item_id": "The exposure's latest work item that is not withdrawn (work_item.id).",
    "item_revision": "The catalog revision that work item was made at.",
    "item_run_id": "The run that made that work item.",
    "issued_at": "When that work item was made (UTC).",
    "item_up_to_date": "True when that work item was made for the exposure's current version and says what the "
                       "stored answer says.",
    "exposure_version": "The exposure's current version (raised when a redelivery changes it).",
    "item_exposure_version": "The exposure version that work item was made for.",
    "selected": "Exposures the pipeline selects for Level 2b.",
    "not_selected": "Exposures the pipeline does not select.",
    "table_selected": "Exposures the published table alone would select.",
    "exposures": "Exposures in the group.",
    "special": "The rule's special: PSF, BACKGROUND, IMPRINT, or '' for none.",
    "note": "The published table's note on the rule.",
    "run_id": "The run's id.",
    "status": "running, succeeded or failed, as stored (`l2rules runs` also shows dead).",
    "started_at": "When the run started (UTC).",
    "finished_at": "When the run finished (UTC).",
    "inputs": "The files the run was given (JSON list).",
    "exposures_seen": "Exposures in the run's inputs, skipped unchanged files included.",
    "exposures_new": "Exposures the run's loads added.",
    "exposures_changed": "Exposures a reload changed (a new exposure version).",
    "exposures_withdrawn": "Exposures a reload left out.",
    "items_created": "Work items the run made.",
    "items_changed": "Of those, items for a new version of an exposure that had one.",
    "items_withdrawn": "Work items the run withdrew (their exposure left its pool).",
    "exposures_unmatched": "Exposures whose EXP_TYPE no rule of the published table knows (of the inputs; of the "
                           "whole catalog for a run without inputs).",
    "rows_rejected": "Pool rows rejected under --skip-bad.",
    "items_reissued": "Work items of failed runs this run wrote again.",
    "reissued_by": "The run that wrote this failed run's items again.",
    "output": "The file the run wrote its new items to, if any.",
    "error": "Why the run failed.",
    "host": "The host the run ran on.",
    "pid": "The run's process id.",
    "items_held": "This run's work items still in the catalog.",
}

#: Columns whose meaning depends on the view.
VIEW_COLUMNS = {
    ("v_current_rules", "instrument"): "The rule's instrument.",
    ("v_current_rules", "exp_type"): "The rule's EXP_TYPE.",
    ("v_current_rules", "level2b"): "True when the rule says processed at Level 2b.",
    ("v_current_rules", "asn_type"): "The association type the rule gives (image2, spec2, ...).",
    ("v_current_rules", "exptype"): "The member type the rule gives.",
    ("v_current_rules", "catalog_revision"): "The head catalog revision.",
    ("v_current_worklist", "catalog_revision"): "The head catalog revision.",
    ("v_runs", "catalog_revision"): "The head catalog revision the run made its items at.",
}


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _columns(conn, view: str) -> list[str]:
    from sqlalchemy import text

    return list(conn.execute(text("SELECT column_name FROM information_schema.columns WHERE table_name = :v "
                                  "AND table_schema = current_schema() ORDER BY ordinal_position"),
                             {"v": view}).scalars())


def _describe(remove: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite keeps no descriptions
    for view, text in VIEWS.items():
        op.execute(f"COMMENT ON VIEW {view} IS {'NULL' if remove else _quoted(text)}")
        for column in _columns(bind, view):
            described = VIEW_COLUMNS.get((view, column), COLUMNS.get(column))
            if described is None:
                raise RuntimeError(f"no description for {view}.{column}")
            op.execute(f"COMMENT ON COLUMN {view}.{column} IS {'NULL' if remove else _quoted(described)}")


def upgrade() -> None:
    _describe(remove=False)


def downgrade() -> None:
    _describe(remove=True)
