"""The work list: what the rules table says, row by row, for every sample pool, on both backends."""

from __future__ import annotations

import importlib
import json
import re

import pandas as pd
import pytest
import sqlalchemy as sa

from l2rules import catalog, get_engine, load, unmatched, worklist
from l2rules.inventory import exposure_stem

from .conftest import POOLS, SAMPLE_POOLS, as_values, pool_stems
from .test_inventory import analysed, read_pool

WORKLIST = importlib.import_module("l2rules.worklist")  # (the package binds the name worklist to the function)
SET = lambda v: v is not None and v.strip().lower() not in ("", "null", "--", "n", "f", "false", "n/a")  # noqa: E731


def _holds_by_hand(operator: str, value: str | None, wanted: str) -> bool:
    """A published-table condition on an upper-cased pool value, by its meaning (the oracle's own reading)."""
    negated = {"absent": "present", "ne": "eq", "not_in_list": "in_list", "not_like": "like"}
    if operator in negated:
        return not _holds_by_hand(negated[operator], value, wanted)
    if value is None:
        return False
    pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in wanted)
    return {"present": True, "eq": value == wanted, "in_list": value in wanted.split("|"),
            "like": re.fullmatch(pattern, value, re.DOTALL) is not None}[operator]


def expected_worklist(path, rules: pd.DataFrame, conditions: pd.DataFrame) -> pd.DataFrame:
    """The work list computed by hand in Python from the seed table: the test's independent oracle."""
    by_key = {(r.exp_type, r.special): r for r in rules.itertuples()}
    _, rows = read_pool(path)
    out = []
    for row in rows:
        exp_type = row["exp_type"].upper()
        if exp_type == "EXP_TYPE":
            continue
        special = ""
        for flag, name in (("is_psf", "PSF"), ("is_imprt", "IMPRINT"), ("bkgdtarg", "BACKGROUND")):
            if SET(row.get(flag)) and (exp_type, name) in by_key:
                special = name
                break
        rule = by_key.get((exp_type, special))
        selected = bool(rule is not None and rule.level2b)
        for cond in conditions[conditions.exp_type == exp_type].itertuples():
            value = row.get(cond.pool_column)
            value = None if value is None or value.lower() in ("", "null") else value.upper()
            selected = selected and _holds_by_hand(cond.operator, value, (cond.value or "").upper())
        tso = SET(row.get("tsovisit")) or exp_type in ("NRC_TSIMAGE", "NRC_TSGRISM", "NRS_BRIGHTOBJ")
        out.append({
            "filename": row["filename"], "exp_type": exp_type, "level2b": selected,
            "exptype": None if rule is None else rule.exptype, "special": special,
            "asn_type": None if rule is None else rule.asn_type,
            "level2b_input": exposure_stem(row["filename"]) + ("_rateints.fits" if tso else "_rate.fits"),
        })
    return pd.DataFrame(out, dtype=object)


@pytest.mark.parametrize("name", SAMPLE_POOLS)
def test_worklist_matches_rules_table_row_by_row(db, name):
    got = worklist(db, source="table", pools=[POOLS / name], include_all=True)
    want = expected_worklist(POOLS / name, as_values(catalog.read_seed()), as_values(catalog.conditions(db)))
    cols = ["filename", "exp_type", "level2b", "exptype", "special", "asn_type", "level2b_input"]
    pd.testing.assert_frame_equal(as_values(got[cols]).reset_index(drop=True), want[cols], check_dtype=False)
    selected = worklist(db, source="table", pools=[POOLS / name])
    assert selected["filename"].tolist() == want.loc[want.level2b.astype(bool), "filename"].tolist()
    assert selected["rule"].notna().all()


def test_work_item_fields(db, pool_path):
    items = worklist(db, source="table", pools=[pool_path("pool_021_tso.csv")]).set_index("exp_type")
    assert items.loc["NRC_TSGRISM", "level2b_input"] == "jw_00004_rateints.fits"
    assert items.loc["NRC_TSGRISM", "asn_type"] == "tso-spec2"
    assert items.loc["NRC_TSGRISM", "program"] == "99009"
    assert items.loc["NRC_TSGRISM", "obs_num"] == "7"
    assert items.loc["NRC_TSGRISM", "rule"] == "NRC_TSGRISM"


def _pool(tmp_path, rows: list[str]):
    path = tmp_path / "flags.csv"
    path.write_text("FILENAME|EXP_TYPE|IS_PSF|IS_IMPRT|BKGDTARG\n" + "\n".join(rows) + "\n")
    return path


def test_special_precedence_and_fallback(db, tmp_path):
    path = _pool(tmp_path, [
        "jw9_a_uncal.fits|NRS_IFU|F|T|T",      # IMPRINT beats BACKGROUND
        "jw9_b_uncal.fits|NRS_IFU|T|F|T",      # no NRS_IFU/PSF rule: next flag, BACKGROUND
        "jw9_c_uncal.fits|MIR_MRS|F|T|F",      # no MIR_MRS/IMPRINT rule: plain rule
        "jw9_d_uncal.fits|NRC_CORON|T|T|T",    # PSF first
        "jw9_e_uncal.fits|MIR_IMAGE|F|F|F",
    ])
    items = worklist(db, source="table", pools=[path]).set_index("filename")
    assert items["special"].to_dict() == {
        "jw9_a_uncal.fits": "IMPRINT", "jw9_b_uncal.fits": "BACKGROUND", "jw9_c_uncal.fits": "",
        "jw9_d_uncal.fits": "PSF", "jw9_e_uncal.fits": ""}
    assert items.loc["jw9_b_uncal.fits", "exptype"] == "background"
    assert items.loc["jw9_c_uncal.fits", "rule"] == "MIR_MRS"


def test_the_published_list_reads_the_always_tso_types_from_the_catalog(db, tmp_path):
    """The published table's Level 2b input is _rateints for the catalog's TSO_ALWAYS types (asn_value_set, as
    the pipeline's rules read it), not a list of the code's: a type added to the set is a TSO exposure."""
    path = tmp_path / "tso.csv"
    path.write_text("FILENAME|EXP_TYPE\njw8_a_uncal.fits|NRC_TSGRISM\njw8_b_uncal.fits|NRC_IMAGE\n")
    before = worklist(db, source="table", pools=[path], store=True).set_index("filename")["level2b_input"]
    assert before.to_dict() == {"jw8_a_uncal.fits": "jw8_a_rateints.fits", "jw8_b_uncal.fits": "jw8_b_rate.fits"}
    with get_engine(db).begin() as conn:
        revision = conn.execute(sa.text("SELECT valid_from FROM asn_value_set WHERE set_name = 'TSO_ALWAYS' "
                                        "AND valid_to IS NULL LIMIT 1")).scalar_one()
        conn.execute(sa.text("INSERT INTO asn_value_set (set_name, value, valid_from) "
                             "VALUES ('TSO_ALWAYS', 'nrc_image', :r)"), {"r": revision})
    after = worklist(db, source="table").set_index("filename")["level2b_input"]
    assert after["jw8_b_uncal.fits"] == "jw8_b_rateints.fits"


def test_unknown_exp_type_is_unmatched_not_dropped(db, tmp_path):
    path = tmp_path / "new.csv"
    path.write_text("FILENAME|EXP_TYPE\njw8_a_uncal.fits|NRC_FUTURE\njw8_b_uncal.fits|NRC_IMAGE\n")
    every = worklist(db, source="table", pools=[path], include_all=True, store=True).set_index("filename")
    assert not every.loc["jw8_a_uncal.fits", "level2b"]
    assert every.loc["jw8_a_uncal.fits", "reason"] == "no rule for exp_type NRC_FUTURE"
    assert every.loc["jw8_b_uncal.fits", "reason"] == "matched rule NRC_IMAGE"
    report = unmatched(db)
    assert report[["exp_type", "exposures"]].values.tolist() == [["NRC_FUTURE", 1]]


def test_not_processed_and_condition_reasons(db, pool_path):
    every = worklist(db, source="table", pools=[pool_path("pool_018_all_exptypes.csv")],
                     include_all=True).set_index("exp_type")
    assert every.loc["NRC_DARK", "reason"] == "rule NRC_DARK says not processed"
    assert every.loc["NRS_LAMP", "reason"] == "rule NRS_LAMP condition failed: lamp present"


def test_nrs_lamp_conditions(db, tmp_path):
    path = tmp_path / "lamp.csv"
    path.write_text("FILENAME|EXP_TYPE|LAMP|OPMODE|GRATING\n"
                    "jw7_a_uncal.fits|NRS_LAMP|LINE1|FIXEDSLIT|G140H\n"
                    "jw7_b_uncal.fits|NRS_LAMP|nolamp|FIXEDSLIT|G140H\n"
                    "jw7_c_uncal.fits|NRS_LAMP|LINE1|grating-only|G140H\n"
                    "jw7_d_uncal.fits|NRS_LAMP|LINE1|IMAGE|MIRROR\n"
                    "jw7_e_uncal.fits|NRS_LAMP|LINE1|null|G140H\n")
    every = worklist(db, source="table", pools=[path], include_all=True, store=True).set_index("filename")
    assert every["level2b"].tolist() == [True, False, False, False, False]
    assert every.loc["jw7_b_uncal.fits", "reason"].endswith("lamp ne NOLAMP")
    assert every.loc["jw7_d_uncal.fits", "reason"].endswith("grating ne MIRROR")
    # Before 2020-12-07 the footnote had no conditions: every lamp exposure was selected.
    assert worklist(db, source="table", include_all=True, at="2019-01-01")["level2b"].all()


def test_as_of_changes_the_work_list(db, pool_path):
    pool = pool_path("pool_018_all_exptypes.csv")
    load(db, pool)
    now = set(worklist(db, source="table")["exp_type"])
    then = set(worklist(db, source="table", at="2019-01-01")["exp_type"])
    assert "NRC_GRISM" not in now
    assert "NRC_LED" not in then and "NRS_LAMP" in then and "NRS_LAMP" not in now


def test_inventory_dataframe_in_dataframe_out(db):
    frame = pd.DataFrame({"FILENAME": ["jw6_a_uncal.fits", "jw6_b_uncal.fits"], "EXP_TYPE": ["nis_soss", "fgs_dark"],
                          "TSOVISIT": ["T", "F"]})
    items = worklist(db, source="table", inventory=frame)
    assert items[["filename", "level2b_input", "asn_type"]].values.tolist() == [
        ["jw6_a_uncal.fits", "jw6_a_rateints.fits", "spec2"]]


def test_impact_between_versions(db, pool_path):
    from l2rules import impact

    changes, counts = impact(db, "2019-01-01", "today", pools=[pool_path("pool_018_all_exptypes.csv")], source="table",
                             store=True)
    leaves = changes[changes.change == "leaves"]
    assert leaves["exp_type"].tolist() == ["NRS_LAMP"]
    assert counts.set_index(["instrument", "change"]).loc[("NIRSpec", "leaves"), "exposures"] == 1
    mimf, _ = impact(db, "2026-01-01", "2026-02-01", source="table")
    assert mimf[["exp_type", "change", "asn_type_from", "asn_type_to"]].values.tolist() == [
        ["NRS_MIMF", "asn_type changes", "wfs-image2", "image2"]]


@pytest.mark.parametrize("points", [("2019-01-01", "2026-12-01"), ("2026-01-01", "2026-02-01"),
                                    ("2017-08-01", "2026-12-01")])
def test_impact_is_the_two_work_lists_compared(db, points):
    """``impact(source="table")`` joins the two work lists in SQL; here they are compared in pandas, row by
    row, on every sample pool: the same changes of the same exposures, in the same order."""
    from l2rules import impact

    for pool in SAMPLE_POOLS:
        load(db, POOLS / pool, progress=False)
    before, after = (worklist(db, source="table", include_all=True, at=point) for point in points)
    both = before.merge(after, on=["pool", "source_line", "filename", "exp_type"], suffixes=("_from", "_to"))
    expected = []
    for row in both.itertuples():
        kept = row.level2b_from and row.level2b_to
        change = ("enters" if row.level2b_to and not row.level2b_from else
                  "leaves" if row.level2b_from and not row.level2b_to else
                  "asn_type changes" if kept and not pd.isna(row.asn_type_from) and not pd.isna(row.asn_type_to)
                  and row.asn_type_from != row.asn_type_to else
                  "role changes" if kept and (None if pd.isna(row.exptype_from) else row.exptype_from)
                  != (None if pd.isna(row.exptype_to) else row.exptype_to) else None)
        if change:
            expected.append([change, row.pool, row.filename, row.exp_type, row.reason_from, row.reason_to])
    exposures, counts = impact(db, *points, source="table")
    assert expected, "these points change some exposure"
    assert exposures[["change", "pool", "filename", "exp_type", "reason_from", "reason_to"]].values.tolist() == expected
    assert counts["exposures"].sum() == len(expected)


def test_cli_formats(db, pool_path, tmp_path, capsys):
    from l2rules.cli import main

    pool = str(pool_path("pool_021_tso.csv"))
    assert main(["--db", db, "worklist", "--published", pool, "--format", "json", "--store"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [i["exp_type"] for i in items] == ["MIR_LRS-SLITLESS", "NIS_SOSS", "NRC_TSIMAGE", "NRC_TSGRISM",
                                              "NRS_BRIGHTOBJ"]
    out = tmp_path / "items.parquet"
    assert main(["--db", db, "worklist", "--published", "--format", "parquet", "--output", str(out)]) == 0
    assert pd.read_parquet(out)["level2b_input"].tolist()[0] == "jw_00001_rateints.fits"
    assert main(["--db", db, "worklist", "--published", "--all", "--format", "csv"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].endswith("level2b,rule,reason,exposure_id")
    assert main(["--db", db, "worklist", "--published", "--format", "parquet"]) == 1
    assert "needs --output" in capsys.readouterr().err


@pytest.mark.parametrize("name", SAMPLE_POOLS)
def test_worklist_associations_match_the_pipeline(db, name):
    """`worklist --associations`: pipeline_selected and its asn_types equal the reference's per exposure."""
    from .conftest import DATA

    got = worklist(db, source="table", pools=[POOLS / name], include_all=True, associations=True).set_index("filename")
    ref = pd.read_csv(DATA / "reference" / name.replace(".csv", ".per_exposure.csv"), dtype=object,
                      keep_default_na=False).set_index("filename")
    ref = ref.loc[got.index]  # template rows of the pools are not exposures
    assert got["pipeline_selected"].tolist() == (ref["selected"] == "True").tolist()
    assert got["pipeline_asn_type"].astype(object).fillna("").tolist() == ref["asn_types"].tolist()
    named = got[got.pipeline_selected]
    assert named["association"].str.match(r"^jw\d{5}-[aco]\d+_[a-z0-9-]+_\d{5}_asn\.json(;|$)").all()


@pytest.mark.parametrize("source", ["table", "pipeline"])
@pytest.mark.parametrize("include_all", [False, True])
def test_streamed_worklist_equals_the_dataframe(db, tmp_path, include_all, source):
    """write_worklist (no DataFrame, chunk by chunk) writes what worklist() gives, as CSV and Parquet; the
    pipeline's list from stored answers and from pools evaluated then alike."""
    import pandas as pd

    from l2rules import write_worklist
    from l2rules.outputs import render

    pools = ([POOLS / "pool_021_tso.csv", POOLS / "pool_010_spec_nirspec_lv2bkg.csv"] if source == "table" else
             # (pools that share no FILENAME stem: the list of each, made right after its load, is the same after all)
             [POOLS / "pool_005_spec_niriss.csv", POOLS / "jw87800_20180412T163456_pool.csv",
              POOLS / "jw00632_dups.csv"])
    frame = worklist(db, source=source, pools=pools, include_all=include_all, store=True)
    assert len(frame) > 0
    if source == "pipeline":  # the middle pool's answers stored, the others evaluated as they are written
        WORKLIST.evaluate(db, [_pool_id(db, pools[1].name)])
    given = {"pools": pools} if source == "pipeline" else {}  # (in the order given; unchanged, so not loaded again)
    count = write_worklist(db, tmp_path / "w.csv", include_all=include_all, source=source, **given)
    assert count == len(frame)
    assert (tmp_path / "w.csv").read_text() == render(frame, "csv")
    write_worklist(db, tmp_path / "w.parquet", fmt="parquet", include_all=include_all, source=source, **given)
    back = pd.read_parquet(tmp_path / "w.parquet").astype(object)
    back = back.where(back.notna(), None)
    assert back.to_dict("records") == as_values(frame).to_dict("records")


def test_many_stored_answers_leave_statistics_for_the_planner(db, tmp_path, monkeypatch):
    """The views and `run` join level2b_answer: storing many answers analyses it (no autovacuum needed)."""
    import l2rules.inventory.store as store

    worklist_module = importlib.import_module("l2rules.worklist")  # the package's `worklist` is the function
    monkeypatch.setattr(store, "STATISTICS_AFTER", 50)
    path = tmp_path / "many.csv"
    path.write_text("FILENAME|EXP_TYPE|ASN_CANDIDATE|TARGETID\n" + "".join(
        f"jw7_{i:06d}_uncal.fits|NRC_IMAGE|[('o001', 'observation')]|1\n" for i in range(60)))
    load(db, path, progress=False)
    engine = get_engine(db)
    assert not analysed(engine, "level2b_answer")  # the load analysed the inventory's tables only
    assert worklist_module.evaluate(db)
    assert analysed(engine, "level2b_answer")


def _answers_from_the_association_files(engine, pool_id) -> dict:
    """Per exposure: the answer as the association files read (``processing``), joined as the work list
    joins it: distinct values sorted, ';'-joined; and the count of associations it is the science of."""
    from l2rules.association import associations, processing

    def joined(values) -> str | None:
        return ";".join(sorted(set(values))) or None

    found = {}
    for exposure_id, (member_types, science) in processing(associations(engine, pool_id)).items():
        found[exposure_id] = (joined(member_types), joined(s[0] for s in science), joined(s[1] for s in science),
                              joined(s[2] for s in science), joined(s[3] for s in science), len(science))
    return found


@pytest.mark.parametrize("name", [*SAMPLE_POOLS, "probes/probe_ifu_imprints.csv",
                                  "probes/probe_wfss_background.csv"])
def test_the_answers_made_in_sql_are_the_association_files(db, name):
    """Each exposure's answer (member types, asn_types, inputs, files, rules; the count in the reason) is made
    in SQL (association.answers): it is what the association files themselves say of the exposure."""
    _answers_are_the_association_files(db, name)


@pytest.mark.parametrize("name", ["probes/probe_wfss_background.csv", "probes/probe_special_psf.csv",
                                  "probes/probe_lrs_nod_ta.csv"])
def test_answers_joined_from_ranked_values_are_the_association_files(db, name, monkeypatch):
    """A field with more than two values per exposure is joined from its values ranked (the others from
    their least and greatest): no pool has one, so every field goes that way here (pools whose
    exposures have two values in some field)."""
    from l2rules.association import answers

    monkeypatch.setattr(answers, "FROM_LEAST_AND_GREATEST", 0)
    _answers_are_the_association_files(db, name)


def test_answers_of_a_pool_without_program_are_the_association_files(db, tmp_path):
    """Without PROGRAM a WFSS parallel association is still made, its file named 'jwNone-...' as the
    association files name it: the exposure stays on the work list (its file name is not NULL)."""
    path = tmp_path / "no_program.csv"
    path.write_text("FILENAME|EXP_TYPE|INSTRUME|ASN_CANDIDATE|TARGETID|PNTGTYPE|PROGRAM|DETECTOR\n"
                    "jw_00001_uncal.fits|NIS_WFSS|NIRISS|[('c1000', 'direct_image')]|1|science|null|nis\n"
                    "jw_00002_uncal.fits|NIS_IMAGE|NIRISS|[('c1000', 'direct_image')]|1|science|null|nis\n")
    _answers_are_the_association_files(db, path)
    assert "jwNone-c1000_spec2_00001_asn.json" in worklist(db)["association"].iloc[0]


def test_candidate_order_past_32_bit_line_numbers(db):
    """The candidates' order is line * 1000 + position: past 2,147,483 lines a 32-bit product overflowed on
    PostgreSQL (a 10M-exposure pool); the associations are those of the same pool in lower lines."""
    from l2rules.association import associations

    pool_id = load(db, POOLS / "jw00632_dups.csv", progress=False).pool_id
    before = [a.as_dict() for a in associations(db, pool_id)]
    with get_engine(db).begin() as conn:
        conn.execute(sa.text("UPDATE exposure SET source_line = source_line + 3000000 WHERE pool_id = :p"),
                     {"p": pool_id})
    assert [a.as_dict() for a in associations(db, pool_id)] == before and before


def _answers_are_the_association_files(db, name):
    from .conftest import DATA

    path = name if not isinstance(name, str) else POOLS / name if (POOLS / name).exists() else DATA / name
    pool_id = load(db, path, progress=False).pool_id
    engine = get_engine(db)
    expected = _answers_from_the_association_files(engine, pool_id)
    frame = worklist(db, pools=[path], include_all=True)
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.text("SELECT filename, id FROM exposure WHERE pool_id = :p"), {"p": pool_id}).all())
    assert frame["level2b"].any()
    for row in as_values(frame).to_dict("records"):
        want = expected.get(ids[row["filename"]], (None,) * 5 + (0,))
        got = (row["exptype"], row["asn_type"], row["level2b_input"], row["association"], row["asn_rule"])
        assert got == want[:5], row["filename"]
        assert row["level2b"] == (want[5] > 0)
        if want[5]:
            assert row["reason"].startswith(f"science of {want[5]} Level 2b association(s)")
        elif want[0]:
            assert row["reason"].startswith(f"a {want[0].replace(';', '/')} member of other associations")


# --- the stored answers: what `run` stored is what `worklist` reads (issue 28) ---------------------------


def _pool_id(url: str, name: str) -> int:
    with get_engine(url).connect() as conn:
        return conn.execute(sa.text("SELECT id FROM pool WHERE name = :n"), {"n": name}).scalar_one()


def _no_evaluation(monkeypatch) -> None:
    def evaluated(*_args, **_kwargs):
        raise AssertionError("a pool with current stored answers was evaluated again")

    monkeypatch.setattr(WORKLIST, "answers_of", evaluated)


@pytest.mark.parametrize("include_all", [False, True])
def test_worklist_reads_the_stored_answers_which_are_the_evaluated_ones(db, include_all, monkeypatch):
    for name in SAMPLE_POOLS:
        load(db, POOLS / name)
    evaluated = worklist(db, include_all=include_all)  # nothing stored yet: every pool evaluated here
    assert len(evaluated) > 0
    with get_engine(db).connect() as conn:
        pools = list(conn.execute(sa.select(sa.func.count()).select_from(sa.table("pool"))).scalars())[0]
    assert len(WORKLIST.evaluate(db)) == pools
    _no_evaluation(monkeypatch)
    pd.testing.assert_frame_equal(worklist(db, include_all=include_all), evaluated)
    # pools asked for by name: each read from the store too, in the order given
    # (two pools whose exposures no other took over: loading them again would change nothing)
    two = [POOLS / "jw87800_20180412T163456_pool.csv", POOLS / "jw00632_dups.csv"]
    asked = worklist(db, pools=two, include_all=include_all)
    assert list(dict.fromkeys(asked["pool"])) == [p.name for p in two]
    assert len(asked) == evaluated["pool"].isin([p.name for p in two]).sum()


def test_worklist_evaluates_only_the_pools_behind_and_stores_nothing(db, twin_db, tmp_path, monkeypatch):
    """A pool delivered again after `run` is behind: it alone is evaluated, in its place, and nothing is
    written (a read); the rows are those of a catalog that never stored an answer."""
    names = ["jw00632_dups.csv", "jw87800_20180412T163456_pool.csv", "pool_005_spec_niriss.csv"]  # (no stem shared)
    for name in names:
        load(db, POOLS / name)
    WORKLIST.evaluate(db)
    header = open(POOLS / names[1]).read().splitlines()
    redelivered = tmp_path / names[1]
    redelivered.write_text("\n".join(header[:-2]) + "\n")  # its last two exposures withdrawn
    load(db, redelivered)
    with get_engine(db).connect() as conn:
        behind = WORKLIST.stale_pools(conn, WORKLIST.head_catalog_version(conn))
        before = conn.execute(sa.text("SELECT count(*), sum(exposure_id) FROM level2b_answer")).one()
    assert len(behind) == 1
    calls, original = [], WORKLIST.answers_of
    monkeypatch.setattr(WORKLIST, "answers_of", lambda conn, pool_ids, *rest: calls.extend(pool_ids)
                        or original(conn, pool_ids, *rest))
    frame = worklist(db, include_all=True)
    assert calls == behind
    for path in (POOLS / names[0], redelivered, POOLS / names[2]):
        load(twin_db, path)
    # the same answers; the ids are each catalog's own (its load history)
    pd.testing.assert_frame_equal(frame.drop(columns="exposure_id"),
                                  worklist(twin_db, include_all=True).drop(columns="exposure_id"))
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*), sum(exposure_id) FROM level2b_answer")).one() == before


POINT_POOLS = ["jw00632_dups.csv", "pool_010_spec_nirspec_lv2bkg.csv", "pool_005_spec_niriss.csv"]  # (no stem shared)


@pytest.mark.parametrize("at", ["1.16.1", "2023-06-01"])
def test_answers_at_another_point_are_stored_once_and_read_after(db, at, monkeypatch):
    """``worklist(at=..., store=True)`` keeps the answers at that point (``level2b_answer_at``): the same
    rows as evaluated, and asking again reads them, with and without ``include_all``; the head's stored
    answers are not touched."""
    for name in POINT_POOLS:
        load(db, POOLS / name)
    evaluated = worklist(db, at=at, include_all=True)
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM level2b_answer_at")).scalar() == 0  # a read stores nothing
    stored = worklist(db, at=at, include_all=True, store=True)
    pd.testing.assert_frame_equal(stored, evaluated)
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM level2b_answer_at")).scalar() == len(evaluated)
        assert conn.execute(sa.text("SELECT count(*) FROM level2b_answer")).scalar() == 0
        assert WORKLIST.stale_pools(conn, WORKLIST.head_catalog_version(conn), when=catalog_point(db, at)) == []
    _no_evaluation(monkeypatch)
    pd.testing.assert_frame_equal(worklist(db, at=at, include_all=True), evaluated)
    selected = worklist(db, at=at)
    assert len(selected) == int(evaluated["level2b"].sum()) > 0
    with pytest.raises(AssertionError, match="evaluated again"):
        worklist(db)  # the head's answers were never stored: it is evaluated


def catalog_point(db: str, at: str):
    from l2rules.points import resolve

    return resolve(get_engine(db), at)


def test_answers_at_a_point_are_behind_after_a_reload_or_a_new_head(db, tmp_path):
    """Stored at a point, a pool's answers are of its load and of the head revision they were made under:
    a reload (a redelivered pool) or another head (a revision that may change the point's past) makes
    them behind, and the work list is evaluated again (and, with store, stored again)."""
    for name in POINT_POOLS:
        load(db, POOLS / name)
    when = catalog_point(db, "1.16.1")
    assert sorted(WORKLIST.evaluate(db, at="1.16.1")) == [1, 2, 3]
    assert WORKLIST.evaluate(db, at="1.16.1") == []  # nothing behind: nothing done
    lines = open(POOLS / POINT_POOLS[0]).read().splitlines()
    redelivered = tmp_path / POINT_POOLS[0]
    redelivered.write_text("\n".join(lines[:-1]) + "\n")
    load(db, redelivered)
    engine = get_engine(db)
    with engine.connect() as conn:
        head = WORKLIST.head_catalog_version(conn)
        reloaded = conn.execute(sa.text("SELECT id FROM pool WHERE name = :n"), {"n": POINT_POOLS[0]}).scalar_one()
        assert WORKLIST.stale_pools(conn, head, when=when) == [reloaded]
        assert WORKLIST.stale_pools(conn, "0001", when=when) == [1, 2, 3]  # another head: every pool behind
    assert WORKLIST.evaluate(db, at="1.16.1") == [reloaded]
    frame = worklist(db, at="1.16.1", include_all=True)
    assert len(frame[frame["pool"] == POINT_POOLS[0]]) == len(lines) - 2  # (the header, the line left out)
    with engine.connect() as conn:  # the withdrawn exposure's answer is not served
        assert conn.execute(sa.text("SELECT count(*) FROM level2b_answer_at")).scalar() == len(frame)


def test_answers_that_can_no_longer_be_served_are_removed_at_the_next_store(db, tmp_path):
    """A pool's answers at a point, once behind (here: the pool reloaded), are never served again: the next
    store, at any point, removes them, and the other pools' answers at that point stay."""
    for name in POINT_POOLS:
        load(db, POOLS / name)
    WORKLIST.evaluate(db, at="1.16.1")
    WORKLIST.evaluate(db, at="2023-06-01")
    engine = get_engine(db)
    count = "SELECT count(*) FROM level2b_answer_at WHERE point = :p"
    points = {at: catalog_point(db, at).key for at in ("1.16.1", "2023-06-01")}
    with engine.connect() as conn:
        before = {at: conn.execute(sa.text(count), {"p": key}).scalar() for at, key in points.items()}
        reloaded = conn.execute(sa.text("SELECT id FROM pool WHERE name = :n"), {"n": POINT_POOLS[0]}).scalar_one()
        of_reloaded = conn.execute(sa.text("SELECT count(*) FROM level2b_answer_at a JOIN exposure e ON "
                                           "e.id = a.exposure_id WHERE e.pool_id = :i AND a.point = :p"),
                                   {"i": reloaded, "p": points["2023-06-01"]}).scalar()
    assert points["1.16.1"] != points["2023-06-01"] and of_reloaded > 0
    lines = open(POOLS / POINT_POOLS[0]).read().splitlines()
    redelivered = tmp_path / POINT_POOLS[0]
    redelivered.write_text("\n".join(lines[:-1]) + "\n")
    load(db, redelivered)
    assert WORKLIST.evaluate(db, at="1.16.1") == [reloaded]
    with engine.connect() as conn:
        after = {at: conn.execute(sa.text(count), {"p": key}).scalar() for at, key in points.items()}
        kept = conn.execute(sa.text("SELECT pool_id, point FROM pool_answers_at ORDER BY pool_id, point")).all()
    assert after["2023-06-01"] == before["2023-06-01"] - of_reloaded  # the reloaded pool's, gone
    assert after["1.16.1"] == before["1.16.1"] - 1  # made again, without the line left out
    assert (reloaded, points["2023-06-01"]) not in kept and (reloaded, points["1.16.1"]) in kept
    assert len(kept) == 2 * len(POINT_POOLS) - 1
    assert WORKLIST.evaluate(db, at="2023-06-01") == [reloaded]  # asked again: made again


def test_points_that_name_the_same_rules_share_their_stored_answers(db):
    """A day and the catalog version last in force on it name the same rules: answers stored at one are
    read at the other (one key, ``Point.key``), where another day with other rules has its own."""
    from l2rules import catalog

    for name in POINT_POOLS:
        load(db, POOLS / name)
    versions = catalog.versions(db).sort_values(["effective_date", "seq"])
    last = versions.iloc[len(versions) // 2]
    day = str(last["effective_date"])[:10]
    same_day = versions[versions["effective_date"] == last["effective_date"]]
    revision = same_day.iloc[-1]["revision"]  # the last of that day: every version of the day reached
    assert catalog_point(db, day).key == catalog_point(db, revision).key == f"version:{revision}"
    assert sorted(WORKLIST.evaluate(db, at=day)) == [1, 2, 3]
    assert WORKLIST.evaluate(db, at=revision) == []  # stored once, for both names
    pd.testing.assert_frame_equal(worklist(db, at=revision, include_all=True), worklist(db, at=day, include_all=True))
    earlier = versions[versions["effective_date"] < last["effective_date"]].iloc[-1]["revision"]
    assert catalog_point(db, earlier).key != catalog_point(db, day).key


def test_worklist_store_at_the_head_stores_the_pools_behind(db):
    for name in POINT_POOLS:
        load(db, POOLS / name)
    frame = worklist(db, store=True)
    with get_engine(db).connect() as conn:
        assert WORKLIST.stale_pools(conn, WORKLIST.head_catalog_version(conn)) == []
        assert conn.execute(sa.text("SELECT count(*) FROM level2b_answer WHERE level2b")).scalar() == len(frame) > 0
        assert conn.execute(sa.text("SELECT count(*) FROM level2b_answer_at")).scalar() == 0


def test_a_pool_whose_exposures_another_load_took_over_is_behind(db, twin_db):
    """An exposure is identified by its FILENAME stem: loading pool_018 takes over exposures pool_007
    holds, so pool_007's stored answers are behind and the work list is what a
    catalog that stored nothing gives."""
    first, second = "pool_007_spec_miri.csv", "pool_018_all_exptypes.csv"
    load(db, POOLS / first)
    WORKLIST.evaluate(db)
    result = load(db, POOLS / second)
    shared = pool_stems(POOLS / first) & pool_stems(POOLS / second)
    assert shared
    with get_engine(db).connect() as conn:
        first_id = conn.execute(sa.text("SELECT id FROM pool WHERE name = :n"), {"n": first}).scalar_one()
        assert WORKLIST.stale_pools(conn, WORKLIST.head_catalog_version(conn)) == sorted([first_id, result.pool_id])
    assert result.taken_over == {first_id: len(shared)}
    assert result.taken_from == {first: len(shared)}
    for name in (first, second):
        load(twin_db, POOLS / name)
    pd.testing.assert_frame_equal(worklist(db, include_all=True), worklist(twin_db, include_all=True))


def test_the_load_summary_names_the_pool_it_took_exposures_from(db, capsys):
    from l2rules.cli import main

    first, second = "pool_007_spec_miri.csv", "pool_018_all_exptypes.csv"
    assert main(["--db", db, "load", str(POOLS / first)]) == 0
    assert "taken over" not in capsys.readouterr().out
    assert main(["--db", db, "load", str(POOLS / second)]) == 0
    shared = len(pool_stems(POOLS / first) & pool_stems(POOLS / second))
    assert capsys.readouterr().out.rstrip().endswith(f", {shared} taken over from pool {first}")
