"""One meaning per flag and one shape per value across commands (issue 14): a run's ``inputs``,
``--format`` as the data format, and every command's --help example."""

from __future__ import annotations

import io
import json

import pandas as pd

from l2rules.cli import main
from l2rules.runs import INPUTS_SEPARATOR, joined_inputs, record, runs

from .runs_helpers import write_pool


# A run's inputs: a list in the library and in JSON; the paths joined by ';' in CSV and the table.

def _two_pools(tmp_path):
    (tmp_path / "in box").mkdir()  # a space in a path: the joined form must keep it whole
    return [str(write_pool(tmp_path / "in box" / "a.csv", 6, prefix="jwa")),
            str(write_pool(tmp_path / "in box" / "b.csv", 6, prefix="jwb"))]


def test_inputs_is_one_list_in_the_library_and_in_json(db, tmp_path, capsys):
    pools = _two_pools(tmp_path)
    assert main(["--db", db, "run", *pools, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["inputs"] == pools
    assert record(db, printed["run_id"])["inputs"] == pools
    assert list(runs(db)["inputs"]) == [pools]
    assert main(["--db", db, "runs", "--format", "json"]) == 0
    assert [r["inputs"] for r in json.loads(capsys.readouterr().out)] == [pools]


def test_inputs_is_one_joined_cell_in_csv_and_the_table(db, tmp_path, capsys):
    pools = _two_pools(tmp_path)
    joined = INPUTS_SEPARATOR.join(pools)
    assert joined_inputs(pools) == joined and joined_inputs([]) == ""
    assert main(["--db", db, "run", *pools, "--format", "csv"]) == 0
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str)
    assert printed["inputs"].tolist() == [joined]
    assert main(["--db", db, "run", "--format", "csv"]) == 0  # a run without inputs: an empty cell
    assert pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str, keep_default_na=False)["inputs"].tolist() \
        == [""]
    assert main(["--db", db, "runs", "--format", "csv"]) == 0
    listed = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str, keep_default_na=False)
    assert listed["inputs"].tolist() == [joined, ""]
    assert [cell.split(INPUTS_SEPARATOR) if cell else [] for cell in listed["inputs"]] == [pools, []]
    for argv in (["run", *pools, "--format", "table"], ["runs"]):
        assert main(["--db", db, *argv]) == 0
        assert joined in capsys.readouterr().out, argv
