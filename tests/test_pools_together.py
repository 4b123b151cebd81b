"""Pools evaluated together, in one pass (issue 28), give each pool exactly what its evaluation alone gives:
the associations, their members and numbers, and every exposure's answer - on both backends, at the head and at
a catalog point whose duplicate removal differs (jwst 1.13.4: 'first_equal', member names compared).

The pools: every sample pool and, for some, a copy under other FILENAMEs (so other stems: a catalog holds a
stem once) - the same candidate ids, programs and asn_ids as the pool copied, the same WFSS level-3 product
names; what is per pool (candidates, duplicates, sequence numbers) must not mix them.
"""

from __future__ import annotations

import importlib
import logging

import pytest
import sqlalchemy as sa

from l2rules import get_engine, load
from l2rules.association import Selection
from l2rules.association.evaluation import evaluating
from l2rules.points import resolve

from .conftest import POOLS, SAMPLE_POOLS

WORKLIST = importlib.import_module("l2rules.worklist")  # (the package binds the name worklist to the function)
#: Sample pools copied under other FILENAMEs: nods, backgrounds, imprints, WFSS (level-3 names), duplicates.
COPIED = ["jw00632_dups.csv", "pool_010_spec_nirspec_lv2bkg.csv", "pool_017_spec_nirspec_lv2imprint.csv",
          "pool_019_niriss_wfss.csv", "pool_023_nirspec_msa_3nod.csv", "pool_005_spec_niriss.csv"]


def renamed_copy(path, directory, prefix: str):
    """The pool file with every FILENAME prefixed (its exposures other stems; every other value the same)."""
    out, column = [], None
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            out.append(line)
            continue
        fields = line.split("|")
        if column is None:
            column = [name.strip().lower() for name in fields].index("filename")
        else:
            fields[column] = prefix + fields[column].strip()
        out.append("|".join(fields))
    copy = directory / f"{prefix}{path.name}"
    copy.write_text("\n".join(out) + "\n")
    return copy


def load_pools(db, tmp_path) -> list[int]:
    ids = [load(db, POOLS / name, progress=False).pool_id for name in SAMPLE_POOLS]
    ids += [load(db, renamed_copy(POOLS / name, tmp_path, "twin_"), progress=False).pool_id for name in COPIED]
    return ids


def _rows(conn, query) -> list[tuple]:
    return [tuple(row) for row in conn.execute(query)]


def evaluated(engine, pool_ids: list[int], when, selection: Selection) -> tuple[list[tuple], list[tuple]]:
    """The final member rows (in the final SELECT's order) and the answers (by exposure) of one evaluation of
    ``pool_ids`` together."""
    with engine.begin() as conn, evaluating(conn, when, selection) as evaluation:
        members = _rows(conn, evaluation.run(pool_ids))
        answers = evaluation.answer()
        return members, _rows(conn, sa.select(answers).order_by(answers.c.exposure_id))


@pytest.mark.parametrize("at", [None, "1.13.4"])
def test_pools_evaluated_together_are_each_evaluated_alone(db, tmp_path, at):
    pool_ids = load_pools(db, tmp_path)
    engine = get_engine(db)
    when = resolve(engine, at)
    together, answers_together = evaluated(engine, pool_ids, when, Selection())
    alone, answers_alone = [], []
    for pool_id in pool_ids:
        members, answers = evaluated(engine, [pool_id], when, Selection())
        assert {row[0] for row in members} <= {pool_id}  # (each row names its pool)
        alone += members
        answers_alone += answers
    # the same rows in the same order (by pool first), and the answers of every exposure
    assert together == alone
    assert sorted(answers_together) == sorted(answers_alone)
    # the copies' associations are named as the originals' (program, asn_id, asn_type, seq: their files), which
    # only the pool keeps apart (an original may have lost exposures to a later sample pool: not all are shared)
    twins = set(pool_ids[len(SAMPLE_POOLS):])
    named = {twin: {(row[5], row[1], row[4], row[7]) for row in together if (row[0] in twins) == twin}
             for twin in (False, True)}
    assert len(named[True] & named[False]) >= 10


@pytest.mark.parametrize("selection", [Selection.of(["c1000", "o001"], dms=True), Selection.of(all_candidates=True)],
                         ids=["dms-ids", "all-candidates"])
def test_selections_of_pools_together_are_those_of_each_alone(db, tmp_path, selection):
    """asn_generate's -i with --DMS (background candidates added per pool) and --all-candidates (the default,
    with the discovery pass, is the test above)."""
    names = ["pool_010_spec_nirspec_lv2bkg.csv", "pool_019_niriss_wfss.csv", "jw00632_dups.csv"]
    pool_ids = [load(db, POOLS / name, progress=False).pool_id for name in names]
    pool_ids += [load(db, renamed_copy(POOLS / name, tmp_path, "twin_"), progress=False).pool_id for name in names]
    engine = get_engine(db)
    together = evaluated(engine, pool_ids, None, selection)
    alone = [evaluated(engine, [pool_id], None, selection) for pool_id in pool_ids]
    assert together[0] == [row for members, _ in alone for row in members] and together[0]
    assert sorted(together[1]) == sorted(row for _, answers in alone for row in answers)


def _stored(url) -> list[tuple]:
    with get_engine(url).connect() as conn:
        return _rows(conn, sa.text(
            "SELECT p.name, e.stem, a.level2b, a.exptype, a.asn_type, a.level2b_input, a.association, a.asn_rule, "
            "a.reason, a.table_level2b, a.table_rule, a.table_reason, p.answers_load, p.answers_revision "
            "FROM level2b_answer a JOIN exposure e ON e.id = a.exposure_id JOIN pool p ON p.id = e.pool_id "
            "ORDER BY p.name, e.stem"))


def test_evaluate_in_one_batch_stores_what_a_batch_per_pool_does(db, twin_db, tmp_path, monkeypatch, caplog):
    """``evaluate()`` of every stale pool in one pass stores each pool's answers and stamps as one pass per
    pool does (a pool the pipeline cannot read among them: its reason on its exposures alone)."""
    unreadable = tmp_path / "no_candidates.csv"
    unreadable.write_text("FILENAME|EXP_TYPE|TARGETID\njw9_00001_uncal.fits|NRC_IMAGE|1\n")
    ids = {}
    for url in (db, twin_db):
        ids[url] = load_pools(url, tmp_path)
        ids[url].insert(3, load(url, unreadable, progress=False).pool_id)
    with caplog.at_level(logging.WARNING, logger="l2rules.worklist"):
        assert sorted(WORKLIST.evaluate(db)) == sorted(ids[db])
    assert sum("no_candidates.csv: no ASN_CANDIDATE column" in message for message in caplog.messages) == 1
    monkeypatch.setattr(WORKLIST, "BATCH_EXPOSURES", 0)  # every pool a batch of its own
    assert sorted(WORKLIST.evaluate(twin_db)) == sorted(ids[twin_db])
    stored = _stored(db)
    assert stored == _stored(twin_db) and len(stored) > 100
    assert {row[8] for row in stored if row[0] == unreadable.name} == {
        "no ASN_CANDIDATE column: the pipeline makes no Level 2b association from it"}
    for url in (db, twin_db):
        with get_engine(url).connect() as conn:
            assert WORKLIST.stale_pools(conn, WORKLIST.head_catalog_version(conn)) == []


def test_the_work_list_of_stale_pools_evaluated_together_is_that_of_each_alone(db, monkeypatch):
    """``worklist()`` of stale pools, not stored: consecutive ones evaluated in one pass, in pool order."""
    names = ["jw00632_dups.csv", "jw87800_20180412T163456_pool.csv", "pool_005_spec_niriss.csv"]  # (no stem shared)
    for name in names:
        load(db, POOLS / name)
    calls, original = [], WORKLIST.answers_of
    monkeypatch.setattr(WORKLIST, "answers_of", lambda conn, pool_ids, *rest: calls.append(list(pool_ids))
                        or original(conn, pool_ids, *rest))
    together = WORKLIST.worklist(db, include_all=True)
    assert len(calls) == 1 and len(calls[0]) == 3
    monkeypatch.setattr(WORKLIST, "BATCH_EXPOSURES", 0)
    alone = WORKLIST.worklist(db, include_all=True)
    assert len(calls) == 4 and all(len(call) == 1 for call in calls[1:])
    assert together.equals(alone) and list(dict.fromkeys(together["pool"])) == sorted(names)


def test_batches_are_consecutive_pools_of_at_most_the_bound(db, tmp_path):
    for rows, name in ((3, "a"), (2, "b"), (6, "c"), (1, "d")):
        path = tmp_path / f"{name}.csv"
        path.write_text("FILENAME|EXP_TYPE|ASN_CANDIDATE|TARGETID\n" + "".join(
            f"jw{name}_{i:05d}_uncal.fits|NRC_IMAGE|[('o001', 'observation')]|1\n" for i in range(rows)))
        load(db, path, progress=False)
    with get_engine(db).connect() as conn:
        ids = list(conn.execute(sa.text("SELECT id FROM pool ORDER BY name")).scalars())
        assert WORKLIST._batches(conn, ids, 5) == [ids[:2], [ids[2]], [ids[3]]]
        assert WORKLIST._batches(conn, ids, 12) == [ids]
        assert WORKLIST._batches(conn, ids[::-1], 7) == [ids[:1:-1], ids[1::-1]]
