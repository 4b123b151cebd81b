"""Association rules dated: every asn_* table keeps its history, constraint groups written once.

Migration 0009 added the pipeline's Level 2b association rules as one undated
snapshot (jwst 3.0.0's). From here on they are dated like the published table:
every asn_* row is in force from the catalog version that added it
(``valid_from``) until the one that replaced or removed it (``valid_to``), so
each pipeline release is a point of the catalog. New tables:

* ``asn_constraint``: constraint groups written once; a condition with operator
  ``constraint`` names one. 0009 repeated one 7-condition block (the
  pipeline's Constraint_Mode with the base exclusions) 22 times: it becomes
  the group ``MODE``, each copy one condition row.
* ``asn_parameter``: settings of the generator that changed between releases;
  ``asn_rule.position``, each rule's place in rules_level2b.py, which one of
  them reads.
* ``pipeline_release``: jwst releases and the catalog date each decides as of.

The snapshot is dated with this revision (effective 2022-10-10, jwst 1.8.0's
release date); the next revisions bring it to what each release did. The
downgrade turns the rows in force back into 0009's tables.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

EFFECTIVE_DATE = dt.date(2022, 10, 10)
REFERENCE = "jwst 3.0.0 rules_level2b, as migration 0009 held it (undated)"
SUMMARY = "Association rules dated and given a history; Constraint_Mode written once (asn_constraint MODE)"

ASN_TYPES = "'image2', 'spec2', 'tso-image2', 'tso-spec2', 'nrslamp-spec2', 'wfs-image2'"
OPERATORS_0009 = "'present', 'absent', 'eq', 'ne', 'in_set', 'not_in_set', 'like', 'not_like', 'path', 'not_path'"
OPERATORS = OPERATORS_0009 + ", 'constraint'"
MATCHES = "'eq', 'opt_eq', 'ne', 'same', 'lacks'"

#: The block 0009 repeats, as (column_name, operator, value) in its order: the group MODE.
MODE = [
    ("instrume", "present", None),
    ("detector", "present", None),
    ("opt_filter", "present", None),
    ("detector", "ne", "nirspec"),
    ("filter", "ne", "opaque"),
    ("exp_detector", "ne", "nrc_tsgrism:nrcblong"),
    ("visitype", "not_like", "_%wfsc%_"),
]
PARAMETERS = [
    ("duplicate_rule_order", "name",
     "of two identical associations of one candidate made by two rules, the one of the rule later by name is "
     "kept ('position': of the rule later in rules_level2b.py)"),
]
#: Each rule's place in jwst 3.0.0's rules_level2b.py (asn_rule.position).
POSITIONS = {name: n for n, name in enumerate((
    "Asn_Lv2CoronAsRate", "Asn_Lv2Image", "Asn_Lv2ImageNonScience", "Asn_Lv2ImageSpecial", "Asn_Lv2ImageTSO",
    "Asn_Lv2FGS", "Asn_Lv2Spec", "Asn_Lv2SpecImprint", "Asn_Lv2SpecSpecial", "Asn_Lv2SpecTSO",
    "Asn_MIRLRSTAConfirm", "Asn_Lv2MIRLRSFixedSlitNod", "Asn_Lv2NRSLAMPImage", "Asn_Lv2NRSLAMPSpectral",
    "Asn_Lv2WFSSNIS", "Asn_Lv2WFSSNRC", "Asn_Lv2WFSSMIR", "Asn_Lv2NRSMSA", "Asn_Lv2NRSFSS", "Asn_Lv2NRSIFUNod",
    "Asn_Lv2WFSC", "Asn_Lv2WFSSParallel"), start=1)}

#: Each table's columns, its key, and which are booleans / integers (for the copies between shapes).
TABLES = {
    "asn_value_set": (("set_name", "value"), ("set_name", "value")),
    "asn_member_type": (("exp_type", "member_type"), ("exp_type",)),
    "asn_rule": (("name", "asn_type", "science_set", "forced_science", "nod_overlap", "wfss", "rate_policy",
                  "imprint_pruning", "note"), ("name",)),
    "asn_condition": (("rule_name", "subject", "alt", "seq", "column_name", "operator", "value"),
                      ("rule_name", "subject", "alt", "seq")),
    "asn_companion": (("rule_name", "kind", "source", "role", "exp_type_set", "attach"), ("rule_name", "kind")),
    "asn_companion_key": (("rule_name", "kind", "column_name", "match"), ("rule_name", "kind", "column_name")),
    "asn_optical_path": (("id", "path_kind", "slit_class", "opmode", "grating", "filter", "pupil", "lamp",
                          "detector", "allowed"), ("id",)),
    "asn_candidate_policy": (("candidate_type", "rule_name", "requirement", "id_pattern"),
                             ("candidate_type", "rule_name")),
}
#: Children first: the order 0009's foreign keys need for dropping.
DROP_ORDER = ("asn_candidate_policy", "asn_optical_path", "asn_companion_key", "asn_companion", "asn_condition",
              "asn_rule", "asn_member_type", "asn_value_set")

catalog_version = sa.table("catalog_version", sa.column("revision"), sa.column("seq"), sa.column("effective_date"),
                           sa.column("reference"), sa.column("summary"))


def _columns(name: str, dated: bool) -> list[sa.Column]:
    """The columns of table ``name``, in 0009's shape or dated."""
    text = lambda n, size, null=False: sa.Column(n, sa.String(size), nullable=null)  # noqa: E731
    flag = lambda n: sa.Column(n, sa.Boolean(create_constraint=False), nullable=False)  # noqa: E731
    cols = {
        "asn_value_set": [text("set_name", 40), text("value", 40)],
        "asn_member_type": [text("exp_type", 40), text("member_type", 32)],
        "asn_rule": [text("name", 40), text("asn_type", 32), text("science_set", 40, True), flag("forced_science"),
                     text("nod_overlap", 16, True), text("wfss", 16, True), text("rate_policy", 16),
                     flag("imprint_pruning"), sa.Column("note", sa.Text, nullable=False)],
        "asn_condition": [text("rule_name", 40), text("subject", 16), sa.Column("alt", sa.Integer, nullable=False),
                          sa.Column("seq", sa.Integer, nullable=False), text("column_name", 40),
                          text("operator", 16), text("value", 80, True)],
        "asn_companion": [text("rule_name", 40), text("kind", 16), text("source", 16), text("role", 16),
                          text("exp_type_set", 40, True), text("attach", 16)],
        "asn_companion_key": [text("rule_name", 40), text("kind", 16), text("column_name", 40), text("match", 8)],
        "asn_optical_path": [sa.Column("id", sa.Integer, nullable=False), text("path_kind", 32),
                             *(text(c, 16, True) for c in ("slit_class", "opmode", "grating", "filter", "pupil",
                                                          "lamp", "detector")), flag("allowed")],
        "asn_candidate_policy": [text("candidate_type", 40), text("rule_name", 40), text("requirement", 32),
                                 text("id_pattern", 40, True)],
    }[name]
    if dated:
        if name == "asn_rule":  # its place in rules_level2b.py: which duplicate survives, in some releases
            cols.append(sa.Column("position", sa.Integer, nullable=False))
        cols += _validity()
    return cols


def _validity() -> list[sa.Column]:
    return [sa.Column("valid_from", sa.String(32), nullable=False), sa.Column("valid_to", sa.String(32), nullable=True)]


def _dated_constraints(name: str, key) -> list:
    return [
        sa.PrimaryKeyConstraint(*key, "valid_from", name=f"pk_{name}"),
        sa.ForeignKeyConstraint(["valid_from"], ["catalog_version.revision"],
                                name=f"fk_{name}_valid_from_catalog_version"),
        sa.ForeignKeyConstraint(["valid_to"], ["catalog_version.revision"],
                                name=f"fk_{name}_valid_to_catalog_version"),
    ]


def _create_dated(name: str) -> sa.Table:
    columns, key = TABLES[name]
    extra = []
    if name == "asn_rule":
        extra.append(sa.CheckConstraint(f"asn_type IN ({ASN_TYPES})", name="ck_asn_rule_asn_type"))
    if name == "asn_condition":
        extra.append(sa.CheckConstraint(f"operator IN ({OPERATORS})", name="ck_asn_condition_operator"))
    if name == "asn_companion_key":
        extra.append(sa.CheckConstraint(f"match IN ({MATCHES})", name="ck_asn_companion_key_match"))
    table = op.create_table(name, *_columns(name, True), *_dated_constraints(name, key), *extra)
    if name == "asn_optical_path":
        op.create_index("ix_asn_optical_path_path_kind", name, ["path_kind"])
    return table


def _create_0009(name: str) -> sa.Table:
    """A table as migration 0009 created it."""
    columns, key = TABLES[name]
    extra: list = [sa.PrimaryKeyConstraint(*key, name=f"pk_{name}")]
    if name == "asn_rule":
        extra.append(sa.CheckConstraint(f"asn_type IN ({ASN_TYPES})", name="ck_asn_rule_asn_type"))
    if name == "asn_condition":
        extra += [sa.ForeignKeyConstraint(["rule_name"], ["asn_rule.name"], name="fk_asn_condition_rule_name_asn_rule"),
                  sa.CheckConstraint(f"operator IN ({OPERATORS_0009})", name="ck_asn_condition_operator")]
    if name == "asn_companion":
        extra.append(sa.ForeignKeyConstraint(["rule_name"], ["asn_rule.name"],
                                             name="fk_asn_companion_rule_name_asn_rule"))
    if name == "asn_companion_key":
        extra += [sa.ForeignKeyConstraint(["rule_name", "kind"], ["asn_companion.rule_name", "asn_companion.kind"],
                                          name="fk_asn_companion_key_rule_name_asn_companion"),
                  sa.CheckConstraint(f"match IN ({MATCHES})", name="ck_asn_companion_key_match")]
    table = op.create_table(name, *_columns(name, False), *extra)
    if name == "asn_optical_path":
        op.create_index("ix_asn_optical_path_path_kind", name, ["path_kind"])
    return table


def _read(bind, name: str, where=None) -> list[dict]:
    columns, key = TABLES[name]
    table = sa.table(name, *(sa.column(c) for c in columns + ("valid_to",)[: 1 if where is not None else 0]))
    query = sa.select(*(table.c[c] for c in columns)).order_by(*(table.c[c] for c in key))
    if where is not None:
        query = query.where(table.c.valid_to.is_(None))
    return [dict(row) for row in bind.execute(query).mappings()]


def _drop(name: str) -> None:
    if name == "asn_optical_path":
        op.drop_index("ix_asn_optical_path_path_kind", table_name=name)
    op.drop_table(name)


def _grouped(conditions: list[dict]) -> list[dict]:
    """Each run of the MODE block inside one (rule, subject, alt) becomes one 'constraint' condition."""
    by_place: dict[tuple, dict[int, dict]] = {}
    for c in conditions:
        by_place.setdefault((c["rule_name"], c["subject"], c["alt"]), {})[c["seq"]] = c
    out = []
    for place, rows in by_place.items():
        skip: set[int] = set()
        for seq in sorted(rows):
            block = [rows.get(seq + i) for i in range(len(MODE))]
            if all(b is not None and (b["column_name"], b["operator"], b["value"]) == m for b, m in zip(block, MODE)):
                out.append(dict(rows[seq], column_name="MODE", operator="constraint", value=None))
                skip.update(seq + i for i in range(len(MODE)))
        out += [rows[s] for s in sorted(rows) if s not in skip]
    return out


def _expanded(conditions: list[dict]) -> list[dict]:
    """Back to 0009's rows: a MODE condition at seq s is the block at s .. s+6."""
    out = []
    for c in conditions:
        if c["operator"] == "constraint":
            out += [dict(c, seq=c["seq"] + i, column_name=col, operator=oper, value=value)
                    for i, (col, oper, value) in enumerate(MODE)]
        else:
            out.append(c)
    return out


def upgrade() -> None:
    bind = op.get_bind()
    rows = {name: _read(bind, name) for name in TABLES}
    rows["asn_condition"] = _grouped(rows["asn_condition"])
    rows["asn_rule"] = [dict(r, position=POSITIONS.get(r["name"], len(POSITIONS) + 1)) for r in rows["asn_rule"]]
    seq = bind.execute(sa.select(sa.func.coalesce(sa.func.max(catalog_version.c.seq), 0))).scalar_one()
    bind.execute(catalog_version.insert().values(revision=revision, seq=seq + 1, effective_date=EFFECTIVE_DATE,
                                                 reference=REFERENCE, summary=SUMMARY))
    for name in DROP_ORDER:
        _drop(name)
    for name in reversed(DROP_ORDER):
        table = _create_dated(name)
        if rows[name]:
            op.bulk_insert(table, [dict(r, valid_from=revision, valid_to=None) for r in rows[name]])
    constraint = op.create_table(
        "asn_constraint",
        sa.Column("name", sa.String(40), nullable=False), sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("column_name", sa.String(40), nullable=False), sa.Column("operator", sa.String(16), nullable=False),
        sa.Column("value", sa.String(80), nullable=True), *_validity(),
        *_dated_constraints("asn_constraint", ("name", "seq")),
        sa.CheckConstraint(f"operator IN ({OPERATORS_0009})", name="ck_asn_constraint_operator"),
    )
    op.bulk_insert(constraint, [dict(name="MODE", seq=i + 1, column_name=col, operator=oper, value=value,
                                     valid_from=revision, valid_to=None) for i, (col, oper, value) in enumerate(MODE)])
    parameter = op.create_table(
        "asn_parameter",
        sa.Column("name", sa.String(40), nullable=False), sa.Column("value", sa.String(80), nullable=False),
        sa.Column("note", sa.Text, nullable=False), *_validity(), *_dated_constraints("asn_parameter", ("name",)),
    )
    op.bulk_insert(parameter, [dict(name=n, value=v, note=note, valid_from=revision, valid_to=None)
                               for n, v, note in PARAMETERS])
    op.create_table(
        "pipeline_release",
        sa.Column("version", sa.String(16), nullable=False), sa.Column("released", sa.Date, nullable=False),
        sa.Column("rules_as_of", sa.Date, nullable=False), *_validity(),
        *_dated_constraints("pipeline_release", ("version",)),
    )


def _release_references(bind) -> None:
    """Work items and runs made at this revision keep it: refuse (nothing changed), or with
    -x drop_data=yes delete those work items and clear the runs' revision."""
    from alembic import context
    from alembic.util import CommandError

    if "work_item" not in sa.inspect(bind).get_table_names():
        return
    item, run = (sa.table(t, sa.column("catalog_revision")) for t in ("work_item", "run"))
    held = {t.name: bind.execute(sa.select(sa.func.count()).select_from(t)
                                 .where(t.c.catalog_revision == revision)).scalar_one() for t in (run, item)}
    if not any(held.values()):
        return
    if not context.is_offline_mode() and context.get_x_argument(as_dictionary=True).get("drop_data") != "yes":
        raise CommandError(f"downgrading below {revision} would drop " + ", ".join(
            f"{t} ({n} rows)" for t, n in held.items() if n) + " made at it; nothing was changed; to drop them, "
            "pass -x drop_data=yes to alembic (drop_data=True to l2rules.migrate.downgrade)")
    bind.execute(item.delete().where(item.c.catalog_revision == revision))
    bind.execute(run.update().where(run.c.catalog_revision == revision).values(catalog_revision=None))


def downgrade() -> None:
    bind = op.get_bind()
    _release_references(bind)
    rows = {name: _read(bind, name, where="in force") for name in TABLES}
    rows["asn_condition"] = _expanded(rows["asn_condition"])
    for name in ("pipeline_release", "asn_parameter", "asn_constraint", *DROP_ORDER):
        _drop(name)
    for name in reversed(DROP_ORDER):
        table = _create_0009(name)
        if rows[name]:
            op.bulk_insert(table, rows[name])
    bind.execute(catalog_version.delete().where(catalog_version.c.revision == revision))
