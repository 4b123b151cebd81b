"""The one condition language (issue 30): the operator table's semantics on both backends, both rule sets
compiling through it, its names in the published table and in a user's new revision."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
import sqlalchemy as sa

from l2rules import catalog, operators, schema, worklist
from l2rules.config import CatalogError, get_engine

from .conftest import POOLS, REPO, as_values
from .test_worklist import _holds_by_hand, expected_worklist

#: Values an exposure may have (NULL among them) and operands, already in one case as every caller gives them.
VALUES = [None, "NOLAMP", "LINE1", "LINE12", "", "LINE_", "LINE%"]  # a value's own _ or %: no wildcard
OPERANDS = ["NOLAMP", "LINE1|NOLAMP", "LINE%", "LINE_", "X"]
NEGATED = {"absent": "present", "ne": "eq", "not_in_list": "in_list", "not_like": "like", "not_in_set": "in_set",
           "not_path": "path"}


def _text(value):
    return sa.cast(sa.literal(value), sa.String) if value is not None else sa.cast(sa.null(), sa.String)


def test_every_operator_is_named_once_and_each_rule_set_names_its_own():
    assert set(schema.CONDITION_OPERATORS) | set(schema.ASN_CONDITION_OPERATORS) == set(operators.OPERATORS)
    assert schema.CONDITION_OPERATORS == ("present", "absent", "eq", "ne", "in_list", "not_in_list", "like",
                                          "not_like")
    assert not set(operators.RENAMED) & set(operators.OPERATORS)  # the old names are gone
    for name, operator in operators.OPERATORS.items():
        assert operator.negates == NEGATED.get(name) and operator.operand in operators.OPERANDS and operator.meaning


def test_plain_operators_by_their_meaning_and_never_null(db):
    """Compiled form and row form, every plain operator on every value (NULL: false for a test of its own, true
    for its negation), against the conditions' meaning read by hand."""
    cases = list(itertools.product(operators.PLAIN_OPERATORS, VALUES, OPERANDS))
    rows = sa.union_all(*(sa.select(sa.literal(i).label("i"), sa.literal(name).label("operator"),
                                    _text(value).label("got"), sa.literal(operand).label("operand"))
                          for i, (name, value, operand) in enumerate(cases))).subquery()
    row_form = operators.per_row(rows.c.operator, rows.c.got, rows.c.operand, operators.PLAIN_OPERATORS)
    with get_engine(db).connect() as conn:
        by_row = dict(conn.execute(sa.select(rows.c.i, row_form)).all())
        for i, (name, value, operand) in enumerate(cases):
            compiled = conn.execute(sa.select(operators.compiled(name, _text(value), operand))).scalar()
            expected = _holds_by_hand(name, value, operand)
            assert compiled is not None and bool(compiled) is expected, (name, value, operand)
            assert by_row[i] is not None and bool(by_row[i]) is expected, (name, value, operand)


def test_operators_that_read_other_tables_take_them_from_the_caller(db):
    context = operators.Context(member=lambda set_name, got: sa.func.coalesce(got.in_(["A", "B"]), sa.false()),
                                 path=lambda kind: kind == "allowed")
    with get_engine(db).connect() as conn:
        for name, value, operand, expected in [("in_set", "A", "S", True), ("in_set", None, "S", False),
                                               ("not_in_set", None, "S", True), ("not_in_set", "C", "S", True),
                                               ("path", None, "allowed", True), ("not_path", None, "allowed", False),
                                               ("not_path", None, "other", True)]:
            held = conn.execute(sa.select(operators.compiled(name, _text(value), operand, context))).scalar()
            assert bool(held) is expected, (name, value, operand)
    with pytest.raises(ValueError, match="value set"):
        operators.compiled("in_set", _text("A"), "S")  # the published table has no value sets
    with pytest.raises(ValueError, match="constraint group"):
        operators.compiled("constraint", _text("A"), "GROUP", context)


def test_an_old_name_says_its_new_one():
    for old, new in operators.RENAMED.items():
        with pytest.raises(ValueError, match=f"operator '{old}' is now '{new}'"):
            operators.check(old, schema.CONDITION_OPERATORS)
    with pytest.raises(ValueError, match="not one of present, absent, eq"):
        operators.check("between", schema.CONDITION_OPERATORS)
    assert operators.check("ne", schema.CONDITION_OPERATORS).negates == "eq"


def test_a_condition_is_described_alike_in_python_and_sql(db):
    with get_engine(db).connect() as conn:
        for column, operator, value in [("lamp", "ne", "NOLAMP"), ("lamp", "present", None)]:
            sql = conn.execute(sa.select(operators.described(sa.literal(column), sa.literal(operator),
                                                              _text(value)))).scalar()
            assert sql == operators.describe(column, operator, value)
    assert operators.describe("lamp", "ne", "NOLAMP") == "lamp ne NOLAMP"


@pytest.mark.parametrize("operator, value", [("absent", None), ("eq", "line1"), ("in_list", "line1|nolamp"),
                                             ("not_in_list", "NOLAMP|LINE1"), ("like", "line%"),
                                             ("not_like", "LINE_")])
def test_the_published_table_takes_every_plain_operator(db, tmp_path, operator, value):
    """A condition with each operator the published table's CHECK allows, on a pool of mixed-case and empty
    values: the work list's verdict is the oracle's (both sides upper-cased), the reason quotes the condition."""
    path = tmp_path / "lamp.csv"
    path.write_text("FILENAME|EXP_TYPE|LAMP|OPMODE|GRATING\n"
                    "jw7_a_uncal.fits|NRS_LAMP|LINE1|FIXEDSLIT|G140H\n"
                    "jw7_b_uncal.fits|NRS_LAMP|nolamp|FIXEDSLIT|G140H\n"
                    "jw7_c_uncal.fits|NRS_LAMP|line12|FIXEDSLIT|G140H\n"
                    "jw7_d_uncal.fits|NRS_LAMP|null|FIXEDSLIT|G140H\n")
    c = schema.rule_condition
    with get_engine(db).begin() as conn:
        valid_from = conn.execute(sa.select(c.c.valid_from).limit(1)).scalar_one()
        conn.execute(c.delete())
        conn.execute(c.insert().values(exp_type="NRS_LAMP", special="", pool_column="lamp", operator=operator,
                                       value=value, note="test", valid_from=valid_from))
    got = worklist(db, source="table", pools=[path], include_all=True, store=True).set_index("filename")
    want = expected_worklist(path, as_values(catalog.read_seed()), as_values(catalog.conditions(db))).set_index(
        "filename")
    assert got["level2b"].astype(bool).tolist() == want["level2b"].astype(bool).tolist()
    assert 0 < int(want["level2b"].astype(bool).sum()) < 4  # the condition decides: some pass, some fail
    failed = got.loc[~got["level2b"].astype(bool), "reason"]
    assert failed.str.endswith(operators.describe("lamp", operator, value)).all()


def test_the_catalog_refuses_an_old_name(db):
    c = schema.rule_condition
    with get_engine(db).connect() as conn, pytest.raises(sa.exc.IntegrityError):
        with conn.begin():
            valid_from = conn.execute(sa.select(c.c.valid_from).limit(1)).scalar_one()
            conn.execute(c.insert().values(exp_type="NRS_LAMP", special="", pool_column="lamp", operator="equals",
                                           value="X", valid_from=valid_from))


def test_a_seed_with_an_old_name_is_refused_naming_the_new_one(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    frame = pd.read_csv(REPO / "seeds" / "level2b_rule_conditions.csv", dtype=object,
                        keep_default_na=False)
    frame.loc[frame.operator == "ne", "operator"] = "not_equals"
    frame.to_csv(seeds / "level2b_rule_conditions.csv", index=False)
    with pytest.raises(CatalogError, match=r"level2b_rule_conditions.csv:2: column operator: operator 'not_equals' "
                                           r"is now 'ne'"):
        catalog.read_table_seed("rule_condition", seeds / "level2b_rule_conditions.csv")
    with pytest.raises(CatalogError, match="is now 'ne'"):
        catalog.plan_revision("2026-11-01", seeds=seeds)
    asn = pd.read_csv(REPO / "seeds" / "asn_constraint.csv", dtype=object, keep_default_na=False)
    asn.loc[0, "operator"] = "constraint"  # groups do not nest
    asn.to_csv(seeds / "asn_constraint.csv", index=False)
    with pytest.raises(CatalogError, match="asn_constraint.csv:2: column operator: operator 'constraint' is not"):
        catalog.read_table_seed("asn_constraint", seeds / "asn_constraint.csv")


def test_the_rules_model_lists_every_operator_as_the_table_has_it():
    """docs/rules-model.md's table of operators: each operator once, with its operand, meaning and rule sets."""
    text = (REPO / "docs" / "rules-model.md").read_text()
    rows = {}
    for line in text.split("## One condition language")[1].split("\n## ")[0].splitlines():
        cells = [cell.strip().replace("\\|", "|") for cell in line.strip().strip("|").split(" | ")]
        if line.startswith("| `"):
            rows[cells[0].strip("`")] = cells[1:]
    assert list(rows) == list(operators.OPERATORS)
    for name, (operand, meaning, sets) in rows.items():
        operator = operators.OPERATORS[name]
        assert operand.replace("`", "'") == operators.OPERANDS[operator.operand] and meaning == operator.meaning
        assert sets == ", ".join(rule_set for rule_set, names in (("published", schema.CONDITION_OPERATORS),
                                                                  ("association", schema.ASN_CONDITION_OPERATORS))
                                 if name in names)


def test_explain_quotes_both_rule_sets_conditions_in_one_form(db):
    """The published table's verdict and the association rules' first failure: each condition as
    ``operators.describe`` writes it, named by an operator of its rule set."""
    from l2rules import association, inventory

    inventory.load(db, POOLS / "pool_018_all_exptypes.csv", progress=False)
    frame = association.explain(db, "jw_00049_uncal.fits")  # NRS_LAMP with no LAMP
    published = frame.iloc[0]
    assert published["rule"] == "published table: NRS_LAMP" and not bool(published["selected"])
    assert published["reason"].startswith("rule NRS_LAMP condition failed: " + operators.describe("lamp", "present",
                                                                                                  None))
    failures = frame.iloc[1:]["reason"].dropna()
    failures = failures[failures.str.startswith("fails ")]
    assert len(failures)
    for reason in failures:
        column, operator = reason.removeprefix("fails ").split(";")[0].split(" ")[:2]
        assert operator in schema.ASN_CONDITION_OPERATORS and f"the exposure has {column}=" in reason
