"""Progress bars (issue 14): the bytes of the file against its size (a total, so an ETA), then the phase of the
work after the rows; nothing without a terminal."""

from __future__ import annotations

import pytest
import tqdm as tqdm_module

from l2rules.inventory import load
from l2rules.inventory.store import progress_bar
from l2rules.runs import run

from .runs_helpers import write_pool


@pytest.fixture
def bars(monkeypatch):
    """The tqdm bars made in this process."""
    made = []

    class Recorded(tqdm_module.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(tqdm_module, "tqdm", Recorded)
    return made


def test_row_load_counts_the_bytes_of_the_file_then_names_its_phases(db, tmp_path, bars, capsys):
    pool = write_pool(tmp_path / "p.csv", 3000)
    size = pool.stat().st_size
    load(db, pool, method="rows", progress=True)
    (bar,) = bars
    assert bar.total == size and bar.n == size and bar.unit == "B"
    err = capsys.readouterr().err
    assert "p.csv" in err and "indexes" in err and "withdrawals and counts" in err and "100%" in err


@pytest.mark.parametrize("progress", [False, None])  # None: shown only when standard error is a terminal
def test_no_progress_without_a_terminal(db, tmp_path, capfd, progress):
    pool = write_pool(tmp_path / "p.csv", 300)
    load(db, pool, progress=progress)
    load(db, write_pool(tmp_path / "b.csv", 300, prefix="jwb"), method="bulk", progress=progress)
    run(db, [write_pool(tmp_path / "q.csv", 30, prefix="jwq")], progress=progress)
    assert capfd.readouterr().err == ""


def test_bulk_load_counts_the_bytes_of_the_file_then_names_its_phase(db, tmp_path, capfd):
    # (on SQLite the bar is the writer process's: its standard error is this one's)
    pool = write_pool(tmp_path / "p.csv", 3000)
    result = load(db, pool, method="bulk", progress=True)
    assert result.method == "bulk"
    err = capfd.readouterr().err
    size = pool.stat().st_size
    total = f"{size / 1024:.0f}k/{size / 1024:.0f}k" if size >= 1000 else f"{size}/{size}"
    assert "p.csv" in err and "100%" in err and "indexes" in err
    assert total.replace("k", "") in err.replace("k", ""), err[-300:]


def test_a_run_names_the_work_list_phase(db, tmp_path, capsys):
    run(db, [write_pool(tmp_path / "p.csv", 30)], progress=True)
    err = capsys.readouterr().err
    assert "p.csv" in err and "indexes" in err and "work list" in err


def test_without_a_size_the_bar_counts_exposures(bars):
    bar = progress_bar(True, "dataframe-0123")
    bar.update(5)
    bar.phase("indexes")
    bar.close()
    assert bars[0].total is None and bars[0].n == 5 and bars[0].unit == " exposures"


def test_asn_counts_the_files_as_they_are_written(db, tmp_path, bars, capsys):
    """`asn` of a large pool is minutes of evaluation, then the files: the bar shows the time, then counts them."""
    from l2rules.association import asn

    from .conftest import POOLS

    written = asn(db, [POOLS / "pool_019_niriss_wfss.csv"], tmp_path / "asn", progress=True)
    bar = next(b for b in bars if b.desc.endswith("associations"))
    assert bar.n == len(written) == 16 and bar.unit == " files"
    assert "pool_019_niriss_wfss: associations: " in capsys.readouterr().err
    bars.clear()
    asn(db, [POOLS / "pool_021_tso.csv"], tmp_path / "again", progress=False)  # a pool not loaded yet
    assert bars and all(b.disable for b in bars)
