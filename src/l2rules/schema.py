"""Schema: the catalog's tables as SQLAlchemy Core metadata.

This is the model that ``alembic check`` compares with the migrated database;
the migrations themselves never import it (each revision is self-contained).
"""

from __future__ import annotations

import sqlalchemy as sa

from . import operators

#: The schema revision this metadata describes (tests/test_migrations.py holds it to the migrations' head).
REVISION = "0059"

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Association exposure types ("member types") a rule may give an exposure.
EXPTYPES = (
    "science", "psf", "background", "imprint", "target_acquisition",
    "dark", "flat", "tracking", "nrs_autoflat", "nrs_autowave",
)
#: Specials: what the exposure's flags make of it ('' = none).
SPECIALS = ("", "PSF", "BACKGROUND", "IMPRINT")
#: Association types a processed rule produces (NULL = not processed).
ASN_TYPES = ("image2", "spec2", "tso-image2", "tso-spec2", "nrslamp-spec2", "wfs-image2")
#: The instrument of an EXP_TYPE, by its first three letters.
INSTRUMENT_OF_PREFIX = {"NRC": "NIRCam", "MIR": "MIRI", "NRS": "NIRSpec", "NIS": "NIRISS", "FGS": "FGS"}
#: Instruments, named from the EXP_TYPE prefix.
INSTRUMENTS = tuple(INSTRUMENT_OF_PREFIX.values())
#: Operators of rule conditions on pool columns (the shared condition language's plain operators, migration 0059).
CONDITION_OPERATORS = operators.PUBLISHED_OPERATORS

#: Pool columns the catalog stores as columns of their own (lower-case names).
#: Any other column of a pool is kept in ``exposure.extra`` (JSON).
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
#: Flag columns: stored as booleans (NULL when the pool leaves them empty).
FLAG_COLUMNS = ("is_psf", "bkgdtarg", "is_imprt", "tsovisit")
#: Columns with a type or meaning of their own, declared explicitly below.
_SPECIAL_COLUMNS = {"filename", "exp_type", *FLAG_COLUMNS}

catalog_version = sa.Table(
    "catalog_version",
    metadata,
    sa.Column("revision", sa.String(32), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False, unique=True),
    sa.Column("effective_date", sa.Date, nullable=False),
    sa.Column("reference", sa.String(200), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    # the day the revision was written; effective_date is the day it takes effect (migration 0022)
    sa.Column("recorded", sa.Date, nullable=True),
)


def _rule_columns() -> list[sa.Column]:
    return [
        sa.Column("exp_type", sa.String(40), nullable=False),
        sa.Column("special", sa.String(16), nullable=False, server_default=""),
        sa.Column("instrument", sa.String(16), nullable=False),
        sa.Column("exptype", sa.String(32), nullable=False),
        sa.Column("level2b", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("asn_type", sa.String(32), nullable=True),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
    ]


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


_RULE_CHECKS = (
    ("special", _in("special", SPECIALS)),
    ("exptype", _in("exptype", EXPTYPES)),
    ("instrument", _in("instrument", INSTRUMENTS)),
    ("asn_type", f"asn_type IS NULL OR {_in('asn_type', ASN_TYPES)}"),
    ("level2b_asn_type", "(level2b AND asn_type IS NOT NULL) OR (NOT level2b AND asn_type IS NULL)"),
)

#: The rules in force at the head revision, keyed by (exp_type, special).
rule = sa.Table(
    "rule",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    *_rule_columns(),
    sa.UniqueConstraint("exp_type", "special"),
    *(sa.CheckConstraint(sql, name=name) for name, sql in _RULE_CHECKS),
)

#: Every state every rule has had: valid from one catalog version until the next that changed it.
rule_history = sa.Table(
    "rule_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    *_rule_columns(),
    sa.Column("valid_from", sa.String(32), sa.ForeignKey("catalog_version.revision"), nullable=False),
    sa.Column("valid_to", sa.String(32), sa.ForeignKey("catalog_version.revision"), nullable=True),
    sa.Index(None, "exp_type", "special"),
    *(sa.CheckConstraint(sql, name=name) for name, sql in _RULE_CHECKS),
)

#: Conditions on other pool columns that a rule's exposures must meet (e.g. NRS_LAMP's LAMP/OPMODE).
rule_condition = sa.Table(
    "rule_condition",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("exp_type", sa.String(40), nullable=False),
    sa.Column("special", sa.String(16), nullable=False, server_default=""),
    sa.Column("pool_column", sa.String(40), nullable=False),
    sa.Column("operator", sa.String(16), nullable=False),
    sa.Column("value", sa.Text, nullable=True),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("valid_from", sa.String(32), sa.ForeignKey("catalog_version.revision"), nullable=False),
    sa.Column("valid_to", sa.String(32), sa.ForeignKey("catalog_version.revision"), nullable=True),
    sa.Index(None, "exp_type", "special"),
    sa.CheckConstraint(_in("operator", CONDITION_OPERATORS), name="operator"),
    sa.CheckConstraint(_in("pool_column", POOL_COLUMNS), name="pool_column"),
)

#: One row per loaded inventory file (or DataFrame).
pool = sa.Table(
    "pool",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("n_exposures", sa.Integer, nullable=False),
    sa.Column("columns", sa.Text, nullable=False),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    # Migration 0021: every load adds one to load_serial; the pool's stored answers and work items record the
    # load and the catalog revision they are of, and a run evaluates and makes items for the pools behind.
    sa.Column("load_serial", sa.Integer, nullable=False, server_default="0"),
    sa.Column("answers_load", sa.Integer, nullable=True),
    sa.Column("answers_revision", sa.String(32), nullable=True),
    sa.Column("items_load", sa.Integer, nullable=True),
    sa.Column("items_revision", sa.String(32), nullable=True),
)

#: Every loaded exposure, identified by its FILENAME stem. Every pool column is kept.
exposure = sa.Table(
    "exposure",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("stem", sa.String(255), nullable=False, unique=True),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("pool_id", sa.Integer, sa.ForeignKey("pool.id"), nullable=False, index=True),
    sa.Column("source_line", sa.Integer, nullable=False),
    sa.Column("exp_type", sa.String(40), nullable=False, index=True),
    *(sa.Column(flag, sa.Boolean(create_constraint=False), nullable=True) for flag in FLAG_COLUMNS),
    *(sa.Column(name, sa.Text, nullable=True) for name in POOL_COLUMNS if name not in _SPECIAL_COLUMNS),
    sa.Column("extra", sa.JSON, nullable=True),
    # Pools are snapshots (migration 0010): the version goes up when a redelivery of the pool changes the
    # exposure's values or leaves it out; withdrawn_at is when a redelivery left it out (NULL: current).
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index(None, "program"),
)

#: The association candidates an exposure belongs to, parsed from ASN_CANDIDATE.
exposure_candidate = sa.Table(
    "exposure_candidate",
    metadata,
    sa.Column("exposure_id", sa.Integer, sa.ForeignKey("exposure.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("cand_id", sa.String(40), nullable=False),
    sa.Column("cand_type", sa.String(40), nullable=False),
    sa.Index(None, "cand_id"),
)

#: Rows a ``--skip-bad`` load refused, with the reason: nothing is lost silently.
load_rejection = sa.Table(
    "load_rejection",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("line", sa.Integer, nullable=True),
    sa.Column("column", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=True),
    sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
)

# --- scheduled runs (migration 0008) -----------------------------------------------------------

#: States of a run: ``running`` until it ends; a run whose process died is marked ``failed`` by the next run.
RUN_STATUSES = ("running", "succeeded", "failed")

#: One row per ``l2rules run``: when, on which catalog revision, with which inputs, what it did.
run = sa.Table(
    "run",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("catalog_revision", sa.String(32), sa.ForeignKey("catalog_version.revision"), nullable=True),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("exposures_seen", sa.Integer, nullable=False),
    sa.Column("exposures_new", sa.Integer, nullable=False),
    sa.Column("exposures_changed", sa.Integer, nullable=False),
    sa.Column("items_created", sa.Integer, nullable=False),
    sa.Column("exposures_unmatched", sa.Integer, nullable=False),
    sa.Column("rows_rejected", sa.Integer, nullable=False),
    sa.Column("items_reissued", sa.Integer, nullable=False),
    # migration 0010: exposures left out of redelivered inputs, items for changed exposures, items withdrawn
    sa.Column("exposures_withdrawn", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("items_changed", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("items_withdrawn", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("reissued_by", sa.Integer, sa.ForeignKey("run.id"), nullable=True),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    # migration 0057: exposures the run's loads took over from other pools (the same FILENAME stem)
    sa.Column("exposures_taken_over", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.CheckConstraint(_in("status", RUN_STATUSES), name="status"),
)

#: The work items runs made: one per (exposure, catalog revision, exposure version), a snapshot of what the
#: rules gave it; withdrawn (with the run that withdrew it) when a redelivery of its pool left the exposure out.
work_item = sa.Table(
    "work_item",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("exposure_id", sa.Integer, sa.ForeignKey("exposure.id"), nullable=False),
    sa.Column("catalog_revision", sa.String(32), sa.ForeignKey("catalog_version.revision"), nullable=False),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("run.id"), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("exp_type", sa.String(40), nullable=False),
    # migration 0018: the pipeline's answer; an exposure may be the science of several associations,
    # so member types, asn_types, inputs, rules and association files are ';'-joined text
    sa.Column("exptype", sa.Text, nullable=False),
    sa.Column("asn_type", sa.Text, nullable=True),
    sa.Column("level2b_input", sa.Text, nullable=False),
    sa.Column("asn_rule", sa.Text, nullable=False),
    sa.Column("exposure_version", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("withdrawn_by", sa.Integer, sa.ForeignKey("run.id"), nullable=True),
    sa.Column("association", sa.Text, nullable=True),
    sa.UniqueConstraint("exposure_id", "catalog_revision", "exposure_version"),
)

def _answer_columns() -> list[sa.Column]:
    """An exposure's answer: the pipeline's, and the published table's verdict beside it (``table_*``)."""
    return [
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
    ]


#: What the pipeline makes of each exposure (migration 0018): the answer ``l2rules worklist`` gives, stored for
#: one version of the exposure at one catalog revision, the published table's verdict beside it. ``l2rules run``
#: writes it (``worklist.evaluate``); the views and work items read it.
level2b_answer = sa.Table(
    "level2b_answer",
    metadata,
    sa.Column("exposure_id", sa.Integer, sa.ForeignKey("exposure.id"), primary_key=True),
    sa.Column("exposure_version", sa.Integer, nullable=False),
    sa.Column("catalog_revision", sa.String(32), sa.ForeignKey("catalog_version.revision"), nullable=False),
    *_answer_columns(),
)

#: Migration 0058: the pipeline's answers at catalog points other than the head (``--pipeline 1.16.1``,
#: ``--as-of``), stored by ``worklist --store`` so that asking again reads them: one row per exposure and
#: point (``Point.key``), the columns of ``level2b_answer``.
level2b_answer_at = sa.Table(
    "level2b_answer_at",
    metadata,
    sa.Column("point", sa.String(40), primary_key=True),
    sa.Column("exposure_id", sa.Integer, sa.ForeignKey("exposure.id"), primary_key=True),
    sa.Column("exposure_version", sa.Integer, nullable=False),
    *_answer_columns(),
)

#: Which pools' answers ``level2b_answer_at`` holds at a point: of which load, and made when which catalog
#: revision was the head (``answers_revision``, as ``pool.answers_revision``). Plain text, no foreign key: a
#: revision written later may change an earlier point's rules, and a data revision's downgrade must not be
#: held by a cache; another head makes them behind.
pool_answers_at = sa.Table(
    "pool_answers_at",
    metadata,
    sa.Column("pool_id", sa.Integer, sa.ForeignKey("pool.id"), primary_key=True),
    sa.Column("point", sa.String(40), primary_key=True),
    sa.Column("answers_load", sa.Integer, nullable=False),
    sa.Column("answers_revision", sa.String(32), nullable=False),
)


# --- Level 2b associations as the jwst pipeline builds them (issue 7, dated in issue 12) ---------
# The published table above says which exp_types are processed; these tables hold the rest of the
# pipeline's conditions as data: its association rules, their conditions on pool columns, the
# companions each rule attaches, valid optical paths and which candidate types keep what.
# ``association`` evaluates them in SQL. Each is seeded from ``seeds/<table>.csv`` and keeps its own
# history (migration 0011): a row is in force from the catalog version ``valid_from`` until the one
# that replaced or removed it (``valid_to``, NULL while in force), as ``rule_history`` does for the
# published table.

#: Operators of association conditions (``asn_condition.operator``); ``constraint`` holds when every
#: condition of the named ``asn_constraint`` group does (the pipeline's reusable constraint classes).
#: The shared condition language's (``operators``).
ASN_CONDITION_OPERATORS = operators.ASSOCIATION_OPERATORS
#: How a companion's column is compared with the science's (``asn_companion_key.match``).
ASN_KEY_MATCHES = ("eq", "opt_eq", "ne", "same", "lacks")


def _dated(*key: str) -> tuple:
    """The validity columns of a dated table, and its primary key: its own key plus ``valid_from``."""
    return (
        sa.Column("valid_from", sa.String(32), sa.ForeignKey("catalog_version.revision"), nullable=False),
        sa.Column("valid_to", sa.String(32), sa.ForeignKey("catalog_version.revision"), nullable=True),
        sa.PrimaryKeyConstraint(*key, "valid_from"),
    )


#: Named sets of values (exposure types, patterns, filters) that conditions refer to.
asn_value_set = sa.Table(
    "asn_value_set",
    metadata,
    sa.Column("set_name", sa.String(40), nullable=False),
    sa.Column("value", sa.String(40), nullable=False),
    *_dated("set_name", "value"),
)

#: The member type an exposure type gives (dark, flat, target_acquisition, ...); others are science.
asn_member_type = sa.Table(
    "asn_member_type",
    metadata,
    sa.Column("exp_type", sa.String(40), nullable=False),
    sa.Column("member_type", sa.String(32), nullable=False),
    *_dated("exp_type"),
)

#: The pipeline's Level 2b association rules (jwst ``rules_level2b``), one row each.
asn_rule = sa.Table(
    "asn_rule",
    metadata,
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("asn_type", sa.String(32), nullable=False),
    sa.Column("science_set", sa.String(40), nullable=True),  # NULL: any exposure type
    sa.Column("forced_science", sa.Boolean(create_constraint=False), nullable=False),
    sa.Column("nod_overlap", sa.String(16), nullable=True),  # fs, fs_primary, msa, never, lrs; NULL: not a nod rule
    sa.Column("wfss", sa.String(16), nullable=True),  # nis, nrc, mir, parallel; NULL: no direct image
    sa.Column("rate_policy", sa.String(16), nullable=False),  # default, or rate (never _rateints for coron)
    sa.Column("imprint_pruning", sa.Boolean(create_constraint=False), nullable=False),  # keep the best imprints
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),  # its place in rules_level2b.py
    *_dated("name"),
    sa.CheckConstraint(_in("asn_type", ASN_TYPES), name="asn_type"),
)

#: Conditions on a subject (the science, or a companion kind) of a rule: every condition of alt 0 must
#: hold and, when the rule has alternatives (alt 1..n), every condition of at least one of them.
asn_condition = sa.Table(
    "asn_condition",
    metadata,
    sa.Column("rule_name", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(16), nullable=False),
    sa.Column("alt", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("column_name", sa.String(40), nullable=False),  # for operator 'constraint': the constraint's name
    sa.Column("operator", sa.String(16), nullable=False),
    sa.Column("value", sa.String(80), nullable=True),
    *_dated("rule_name", "subject", "alt", "seq"),
    sa.CheckConstraint(_in("operator", ASN_CONDITION_OPERATORS), name="operator"),
)

#: Constraint groups written once and named from conditions (``operator = 'constraint'``), as the
#: pipeline writes ``Constraint_Mode`` once and reuses it: every condition of the group must hold.
asn_constraint = sa.Table(
    "asn_constraint",
    metadata,
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("column_name", sa.String(40), nullable=False),
    sa.Column("operator", sa.String(16), nullable=False),
    sa.Column("value", sa.String(80), nullable=True),
    *_dated("name", "seq"),
    sa.CheckConstraint(_in("operator", ASN_CONDITION_OPERATORS[:-1]), name="operator"),
)

#: Companion members a rule attaches to its science: from the pool (conditions with this subject)
#: or from the rule's other science exposures (nods); with the role they take.
asn_companion = sa.Table(
    "asn_companion",
    metadata,
    sa.Column("rule_name", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # pool, science
    sa.Column("role", sa.String(16), nullable=False),  # own (the member's own type), background, direct_image
    sa.Column("exp_type_set", sa.String(40), nullable=True),  # exposure types it may have (NULL: any)
    # always; order: it follows the science in the pool, or the science is its rule's first in the
    # candidate (the pipeline adds it only to associations that exist when it reads it); after: it
    # follows the science; leading: it precedes the first science; first: only the first eligible one;
    # next: it precedes the science, and goes to the first science after it (jwst before 1.10.0's PSFs)
    sa.Column("attach", sa.String(16), nullable=False),  # always, order, after, leading, first, next
    *_dated("rule_name", "kind"),
)

#: Grouping keys: the columns on which a companion must match its science.
asn_companion_key = sa.Table(
    "asn_companion_key",
    metadata,
    sa.Column("rule_name", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("column_name", sa.String(40), nullable=False),
    sa.Column("match", sa.String(8), nullable=False),
    *_dated("rule_name", "kind", "column_name"),
    sa.CheckConstraint(_in("match", ASN_KEY_MATCHES), name="match"),
)

#: Valid (allowed) or excluded optical paths per kind; NULL in a column matches any value.
asn_optical_path = sa.Table(
    "asn_optical_path",
    metadata,
    sa.Column("id", sa.Integer, nullable=False),
    sa.Column("path_kind", sa.String(32), nullable=False, index=True),
    sa.Column("slit_class", sa.String(16), nullable=True),
    sa.Column("opmode", sa.String(16), nullable=True),
    sa.Column("grating", sa.String(16), nullable=True),
    sa.Column("filter", sa.String(16), nullable=True),
    sa.Column("pupil", sa.String(16), nullable=True),
    sa.Column("lamp", sa.String(16), nullable=True),
    sa.Column("detector", sa.String(16), nullable=True),
    sa.Column("allowed", sa.Boolean(create_constraint=False), nullable=False),
    *_dated("id"),
)

#: Which associations a candidate type keeps: a rule's own row, else the '*' row; unlisted types keep none.
asn_candidate_policy = sa.Table(
    "asn_candidate_policy",
    metadata,
    sa.Column("candidate_type", sa.String(40), nullable=False),
    sa.Column("rule_name", sa.String(40), nullable=False),
    sa.Column("requirement", sa.String(32), nullable=False),  # always, background_member, never
    sa.Column("id_pattern", sa.String(40), nullable=True),  # SQL LIKE pattern on the candidate id
    *_dated("candidate_type", "rule_name"),
)

#: Settings of the generator itself that changed between releases (which duplicate survives...).
asn_parameter = sa.Table(
    "asn_parameter",
    metadata,
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("value", sa.String(80), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    *_dated("name"),
)

#: The jwst pipeline's releases as points of the catalog: release ``version`` (released on
#: ``released``) decides as the catalog did on ``rules_as_of`` - its release date on the main line,
#: the date of the release it patches for a patch release made after a newer one.
pipeline_release = sa.Table(
    "pipeline_release",
    metadata,
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("released", sa.Date, nullable=False),
    sa.Column("rules_as_of", sa.Date, nullable=False),
    *_dated("version"),
)


#: The reporting views' columns (migrations 0018 onwards) and the type each is read as, the same on both
#: backends: SQLite gives a view's computed columns no type, so ``report.view`` types them from here
#: (tests/test_views.py checks this against PostgreSQL's own description of the views, column by column).
_TEXT, _INT, _BOOL, _TIME = sa.Text(), sa.Integer(), sa.Boolean(), sa.DateTime(timezone=True)
VIEW_COLUMNS: dict[str, dict[str, sa.types.TypeEngine]] = {
    "v_current_rules": {"instrument": _TEXT, "exp_type": _TEXT, "special": _TEXT, "exptype": _TEXT, "level2b": _BOOL,
        "asn_type": _TEXT, "note": _TEXT, "catalog_revision": _TEXT},
    "v_exposure_status": {"exposure_id": _INT, "pool": _TEXT, "source_line": _INT, "filename": _TEXT,
        "exp_type": _TEXT, "instrument": _TEXT, "exptype": _TEXT, "asn_type": _TEXT, "level2b_input": _TEXT,
        "association": _TEXT, "asn_rule": _TEXT, "program": _TEXT, "obs_num": _TEXT, "level2b": _BOOL, "reason": _TEXT,
        "table_level2b": _BOOL, "table_asn_type": _TEXT, "table_rule": _TEXT, "table_reason": _TEXT,
        "answer_revision": _TEXT, "answer_current": _BOOL},
    "v_current_worklist": {"pool": _TEXT, "source_line": _INT, "filename": _TEXT, "exp_type": _TEXT,
        "instrument": _TEXT, "exptype": _TEXT, "asn_type": _TEXT, "level2b_input": _TEXT, "association": _TEXT,
        "asn_rule": _TEXT, "program": _TEXT, "obs_num": _TEXT, "table_level2b": _BOOL, "work_item_id": _INT,
        "item_revision": _TEXT, "item_run_id": _INT, "issued_at": _TIME, "item_up_to_date": _BOOL,
        "catalog_revision": _TEXT, "answer_revision": _TEXT, "answer_current": _BOOL, "exposure_version": _INT,
        "item_exposure_version": _INT},
    "v_exposure_counts": {"instrument": _TEXT, "exp_type": _TEXT, "exptype": _TEXT, "selected": _INT,
        "not_selected": _INT, "table_selected": _INT, "exposures": _INT},
    "v_unmatched": {"pool": _TEXT, "source_line": _INT, "filename": _TEXT, "exp_type": _TEXT, "instrument": _TEXT,
        "program": _TEXT, "obs_num": _TEXT},
    "v_runs": {"run_id": _INT, "status": _TEXT, "started_at": _TIME, "finished_at": _TIME, "catalog_revision": _TEXT,
        "inputs": _TEXT, "exposures_seen": _INT, "exposures_new": _INT, "exposures_changed": _INT,
        "exposures_withdrawn": _INT, "items_created": _INT, "items_changed": _INT, "items_withdrawn": _INT,
        "exposures_unmatched": _INT, "rows_rejected": _INT, "items_reissued": _INT, "reissued_by": _INT,
        "output": _TEXT, "error": _TEXT, "host": _TEXT, "pid": _INT, "items_held": _INT, "exposures_taken_over": _INT},
}

#: The SQL type of each column of the work lists' frames (and of ``impact``'s and ``explain``'s): the schema column
#: it is read from or stored in. Its dtype follows (``outputs.typed``), as a SELECT's columns give theirs.
COLUMN_TYPES = {
    "pool": pool.c.name.type,
    **{c: exposure.c[c].type for c in ("source_line", "filename", "exp_type", "program", "obs_num")},
    **{c.name: c.type for c in level2b_answer.c if c.name != "catalog_revision"},
    "instrument": sa.Text(), "change": sa.Text(), "exposures": sa.Integer(),
    **{f"{c}_{side}": t for side in ("from", "to") for c, t in (
        ("exptype", sa.Text()), ("asn_type", sa.Text()), ("reason", sa.Text()), ("role", sa.Text()),
        ("input", sa.Text()), ("association", sa.Text()))},
    "pipeline_selected": sa.Boolean(), "pipeline_asn_type": sa.Text(),
    # explain: per association candidate and rule
    "candidate": sa.Text(), "candidate_type": sa.Text(), "rule": sa.Text(), "selected": sa.Boolean(),
}
