"""Inventories from FITS files: primary headers made pool rows as the pipeline's asn_make_pool makes them."""

from __future__ import annotations

import gzip
import re

import pytest
import sqlalchemy as sa

fits = pytest.importorskip("astropy.io.fits")

from l2rules import association, conformance, inventory, load, worklist  # noqa: E402
from l2rules.cli import main  # noqa: E402
from l2rules.config import get_engine  # noqa: E402
from l2rules.inventory import InventoryError  # noqa: E402
from l2rules.inventory import fits as l2fits  # noqa: E402

from .conftest import POOLS  # noqa: E402
from .test_inventory import read_pool, state  # noqa: E402

#: The pool columns mkpool sets itself: not header keywords.
NON_HEADER = set(l2fits.NON_HEADER_DEFAULTS)
ROUND_TRIP_POOLS = ["pool_021_tso.csv", "pool_002_image_miri.csv"]


def write_fits(path, cards: dict[str, str], compress: bool = False):
    """A header-only FITS file (a PrimaryHDU and no data) with ``cards``."""
    hdu = fits.PrimaryHDU()
    for keyword, value in cards.items():
        hdu.header[keyword] = value
    if compress:
        import io

        buffer = io.BytesIO()
        hdu.writeto(buffer)
        path.write_bytes(gzip.compress(buffer.getvalue()))
    else:
        hdu.writeto(path)
    return path


def pool_cards(row: dict[str, str]) -> dict[str, str]:
    """A pool row as the header of its exposure: its columns as keywords, OBSERVTN from its observation candidate."""
    cards = {k.upper(): v for k, v in row.items() if k not in NON_HEADER and v.lower() != "null"}
    observation = re.search(r"\('o(\w+)', 'observation'\)", row.get("asn_candidate", ""))
    if observation:
        cards["OBSERVTN"] = observation.group(1)
    return cards


def fits_from_pool(pool, directory, compress=False):
    """One FITS file per exposure of ``pool`` (its template leftover rows aside), named by its FILENAME."""
    directory.mkdir(parents=True, exist_ok=True)
    _header, rows = read_pool(POOLS / pool)
    written = []
    for row in rows:
        if row["exp_type"].lower() == "exp_type":
            continue
        name = row["filename"] + (".gz" if compress else "")
        written.append(write_fits(directory / name, pool_cards(row), compress))
    return written


def comparable(frame):
    drop = [c for c in frame.columns if c in ("pool", "pool_id", "exposure_id", "id", "source_line", "line")]
    out = frame.drop(columns=drop)
    return out.sort_values(list(out.columns)[:3]).reset_index(drop=True).astype(str)


@pytest.mark.parametrize("pool", ROUND_TRIP_POOLS)
def test_fits_files_give_the_pools_worklist_and_associations(db, tmp_path, pool):
    files = fits_from_pool(pool, tmp_path / pool.removesuffix(".csv"))
    # First the pool file's answers (an exposure is its FILENAME stem: the FITS load takes them over).
    from_pool = load(db, POOLS / pool)
    expected = worklist(db, pools=[POOLS / pool])
    expected_asns = conformance.made_associations(association.associations(db, from_pool.pool_id))
    from_fits = load(db, tmp_path / pool.removesuffix(".csv"))
    assert from_fits.loaded == len(files) and from_fits.rejected == 0 and from_fits.pool_id != from_pool.pool_id
    made = worklist(db, pools=[tmp_path / pool.removesuffix(".csv")])
    expected = expected[expected["exp_type"].str.lower() != "exp_type"]  # the template leftover: no file
    assert len(made) == len(files)
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(comparable(made), comparable(expected))
    made_asns = conformance.made_associations(association.associations(db, from_fits.pool_id))
    assert made_asns == expected_asns and made_asns


def test_every_keyword_is_kept_and_the_non_header_columns_are_mkpools(db, tmp_path):
    write_fits(tmp_path / "a_uncal.fits", {"FILENAME": "jw1_a_uncal.fits", "EXP_TYPE": "MIR_IMAGE", "OBSERVTN": "004",
                                           "TARGNAME": "M33", "MYKEY": "x", "PNTGTYPE": "target_acquisition"})
    write_fits(tmp_path / "b_uncal.fits.gz", {"FILENAME": "jw1_b_uncal.fits", "EXP_TYPE": "MIR_IMAGE",
                                              "OBSERVTN": "004", "TARGNAME": "M31", "TSOVISIT": True}, compress=True)
    pool = l2fits.make_pool(tmp_path, options=l2fits.Options(asn_candidate="[('c1000', 'background')]"))
    a, b = pool.items
    assert a["mykey"] == "x" and b["tsovisit"] == "True" and pool.values(a)[pool.columns.index("tsovisit")] == "null"
    assert a["pntgtype"] == "science"  # mkpool's value, over the header's
    assert a["asn_candidate"] == "[('o004', 'observation'), ('c1000', 'background')]"
    assert (a["targetid"], b["targetid"]) == ("1", "2")
    assert pool.columns == sorted(pool.columns) and {"simple", "bitpix", "dithptin", "mostilno"} <= set(pool.columns)
    result = load(db, tmp_path)
    assert result.inserted == 2
    with get_engine(db).connect() as conn:
        extra = conn.execute(sa.text("select extra from exposure where stem = 'jw1_a'")).scalar_one()
    assert "mykey" in str(extra)


def bad_files(directory):
    """(file, keyword or None, words of the reason) for each kind of bad file."""
    good = write_fits(directory / "good_uncal.fits", {"FILENAME": "jw1_good_uncal.fits", "EXP_TYPE": "MIR_IMAGE"})
    data = good.read_bytes()
    (directory / "empty.fits").write_bytes(b"")
    (directory / "text.fits").write_text("FILENAME|EXP_TYPE\nx|y\n")
    (directory / "truncated.fits").write_bytes(data[:300])  # before the END card
    (directory / "cut.fits").write_bytes(data[:800])  # after it, in the header's block
    (directory / "truncated.fits.gz").write_bytes(gzip.compress(data)[:40])
    write_fits(directory / "nofilename.fits", {"EXP_TYPE": "MIR_IMAGE"})
    write_fits(directory / "noexptype.fits", {"FILENAME": "jw1_x_uncal.fits"})
    return {"empty.fits": (None, "empty file"), "text.fits": ("SIMPLE", "not a FITS file"),
            "truncated.fits": ("END", "truncated"), "cut.fits": ("END", "cut short"),
            "truncated.fits.gz": (None, "gzip"),
            "nofilename.fits": ("FILENAME", "no FILENAME keyword"), "noexptype.fits": ("EXP_TYPE", "no EXP_TYPE")}


def test_each_bad_file_is_one_line_naming_it_and_the_load_stores_nothing(db, tmp_path):
    cases = bad_files(tmp_path)
    before = state(db)
    for name, (keyword, words) in cases.items():
        with pytest.raises(InventoryError) as caught:
            load(db, [tmp_path / "good_uncal.fits", tmp_path / name])
        message = str(caught.value)
        assert "\n" not in message and str(tmp_path / name) in message and words in message, message
        if keyword:
            assert f": {keyword}: " in message
    assert state(db) == before


def test_skip_bad_keeps_each_bad_file_as_a_rejection(db, tmp_path):
    cases = bad_files(tmp_path)
    result = load(db, tmp_path, skip_bad=True)
    assert (result.inserted, result.rejected) == (1, len(cases))
    stored = inventory.rejections(db)
    assert len(stored) == len(cases)
    for name, (keyword, words) in cases.items():
        row = stored[stored["raw"] == str(tmp_path / name)].iloc[0]
        assert words in row["reason"] and str(tmp_path / name) in row["reason"]
        if keyword:
            assert row["column"] == keyword
    # A load again after the files are mended replaces the rejections.
    for name in cases:
        (tmp_path / name).unlink()
    assert load(db, tmp_path, skip_bad=True).rejected == 0
    assert len(inventory.rejections(db)) == 0


def test_reloading_a_directory_with_one_file_changed_updates_one_exposure(db, tmp_path, capsys):
    directory = tmp_path / "pool_002_image_miri"
    files = fits_from_pool("pool_002_image_miri.csv", directory)
    assert main(["--db", db, "load", str(directory)]) == 0
    assert f"{len(files)} new, 0 updated, 0 changed" in capsys.readouterr().out
    first = fits.getheader(files[0])
    write_fits(files[0].with_suffix(".tmp"), {**{k: v for k, v in first.items() if k not in
                                                 ("SIMPLE", "BITPIX", "NAXIS", "EXTEND")}, "FILTER": "F770W"})
    files[0].with_suffix(".tmp").replace(files[0])
    result = load(db, directory)
    # Every file's row is written again (updated); the changed one alone is a new version.
    assert (result.inserted, result.updated, result.changed) == (0, len(files), 1)
    assert main(["--db", db, "load", str(directory)]) == 0
    assert f"{len(files)} exposures (0 new, {len(files)} updated, 0 changed)" in capsys.readouterr().out
    with get_engine(db).connect() as conn:
        versions = dict(conn.execute(sa.text("select filename, version from exposure")).all())
    assert sorted(versions.values()).count(2) == 1


def test_cli_load_takes_files_globs_and_options(db, tmp_path, capsys):
    files = fits_from_pool("pool_021_tso.csv", tmp_path / "tso")
    assert main(["--db", db, "load", *map(str, files)]) == 0
    out = capsys.readouterr().out
    assert f"{len(files)} exposures ({len(files)} new" in out
    assert main(["--db", db, "load", str(tmp_path / "tso" / "*.fits"), "--is-imprt", "t", "--dms-note", "n1",
                 "--asn-candidate", "[('c1000', 'background')]"]) == 0
    assert f"{len(files)} exposures (0 new, {len(files)} updated, {len(files)} changed)" in capsys.readouterr().out
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("select count(*) from exposure_candidate where cand_id = 'c1000'")).scalar() \
            == len(files)


def test_cli_bad_file_exits_2_with_one_line(db, tmp_path, capsys):
    bad_files(tmp_path)
    assert main(["--db", db, "load", str(tmp_path / "good_uncal.fits"), str(tmp_path / "noexptype.fits")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"l2rules: error: {tmp_path / 'noexptype.fits'}: EXP_TYPE: no EXP_TYPE keyword in the primary header"


def test_pool_command_writes_the_pipelines_format(tmp_path, capsys):
    files = fits_from_pool("pool_021_tso.csv", tmp_path / "tso")
    out = tmp_path / "pool.csv"
    assert main(["pool", str(tmp_path / "tso"), "--output", str(out)]) == 0
    header, rows = read_pool(out)
    assert header == sorted(header) and len(rows) == len(files)
    assert {r["filename"] for r in rows} == {f.name for f in files}
    assert sorted(r["asn_candidate"] for r in rows)[0] == "[('o002', 'observation')]"
    assert all(r["dms_note"] == "" for r in rows)


def test_a_directory_its_glob_and_its_files_are_one_source_and_pool(db, tmp_path, monkeypatch):
    files = fits_from_pool("pool_002_image_miri.csv", tmp_path / "miri")
    monkeypatch.chdir(tmp_path)
    results = [load(db, s) for s in ("miri/", "miri/*.fits", [f"miri/{f.name}" for f in files])]
    assert [r.source for r in results] == ["miri"] * 3
    assert len({r.pool_id for r in results}) == 1 and results[0].inserted == len(files)


# --- the pipeline's own asn_make_pool, as a fixture (tests/data/fits/README.md) ----------------------

FIXTURES = __import__("pathlib").Path(__file__).parent / "data" / "fits"
ODD_OPTIONS = ["--dms-note", "a note", "--asn-candidate", "[('c1000', 'background')]"]


def odd_value_files(directory):
    """Headers with values a pool writer must quote (or not): a delimiter, quotes, blanks, empty, numbers, booleans."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, value in enumerate(["a|b", " lead", 'has "q"', "x y", "null", ""]):
        write_fits(directory / f"jw_odd{i}_uncal.fits",
                   {"FILENAME": f"jw_odd{i}_uncal.fits", "EXP_TYPE": "MIR_IMAGE", "TARGNAME": "t", "OBSERVTN": "001",
                    "ODD": value, "NUM": 1.5 if i else 3, "FLAG": bool(i % 2)})


def fixture_files(root):
    """The FITS files the fixtures were made of: ``python -c 'from tests.test_fits import fixture_files; ...'``."""
    from pathlib import Path

    root = Path(root)
    fits_from_pool("pool_002_image_miri.csv", root / "pool_002_image_miri")
    odd_value_files(root / "odd")
    return root


@pytest.mark.parametrize("directory, fixture, options", [
    ("pool_002_image_miri", "pool_002_image_miri.mkpool.csv", []),
    ("odd", "odd_values.mkpool.csv", ODD_OPTIONS),
])
def test_pool_command_writes_what_the_pipelines_asn_make_pool_writes(tmp_path, directory, fixture, options):
    fixture_files(tmp_path)
    out = tmp_path / "made.csv"
    assert main(["pool", str(tmp_path / directory), "--output", str(out), *options]) == 0
    assert out.read_text() == (FIXTURES / fixture).read_text()


def test_two_files_of_one_exposure(db, tmp_path):
    cards = {"FILENAME": "jw1_a_uncal.fits", "EXP_TYPE": "MIR_IMAGE"}
    write_fits(tmp_path / "a.fits", cards)
    write_fits(tmp_path / "copy.fits.gz", cards, compress=True)
    assert (load(db, tmp_path).inserted, load(db, tmp_path).duplicates) == (1, 1)  # a copy: one exposure
    write_fits(tmp_path / "b.fits", {**cards, "FILTER": "F770W"})
    with pytest.raises(InventoryError, match=r"b\.fits: FILENAME: duplicate exposure jw1_a_uncal\.fits \(also in "
                                             r".*a\.fits\) with different header values"):
        load(db, tmp_path)


def test_pool_command_bad_files(tmp_path, capsys):
    cases = bad_files(tmp_path)
    assert main(["pool", str(tmp_path)]) == 2
    assert "cut.fits: END: truncated" in capsys.readouterr().err  # the first bad file, by name
    assert main(["pool", str(tmp_path / "*.fits*"), "--skip-bad"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 2 and "jw1_good_uncal.fits" in out
    assert err.count("l2rules: skipped") == len(cases)
    assert main(["pool", str(tmp_path / "*.csv")]) == 2
    assert "no FITS file" in capsys.readouterr().err


def test_worklist_and_asn_take_a_shells_list_of_files_as_one_pool(db, tmp_path, capsys):
    files = fits_from_pool("pool_002_image_miri.csv", tmp_path / "miri")
    assert main(["--db", db, "worklist", *map(str, files), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(files) + 1 and all(line.startswith("miri,") for line in lines[1:])
    assert main(["--db", db, "asn", *map(str, files), "--output", str(tmp_path / "by_files")]) == 0
    assert main(["--db", db, "asn", str(tmp_path / "miri"), "--output", str(tmp_path / "by_dir")]) == 0
    by_files = sorted(p.name for p in (tmp_path / "by_files").iterdir())
    assert by_files and by_files == sorted(p.name for p in (tmp_path / "by_dir").iterdir())


def test_options_and_paths_that_do_not_fit(db, tmp_path):
    files = fits_from_pool("pool_002_image_miri.csv", tmp_path / "miri")
    with pytest.raises(inventory.L2RulesError, match="bulk path"):
        load(db, files[0], method="bulk")
    with pytest.raises(inventory.L2RulesError, match="not FITS files"):
        load(db, POOLS / "pool_002_image_miri.csv", fits_options=l2fits.Options(dms_note="x"))
    with pytest.raises(InventoryError, match="no FITS file"):
        load(db, tmp_path / "nothing" / "*.fits")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InventoryError, match="no FITS file"):
        load(db, tmp_path / "empty_dir")
    with pytest.raises(inventory.L2RulesError, match="--asn-candidate"):
        l2fits.Options(asn_candidate="[('c1000'").candidates()
    assert main(["--db", db, "load", str(POOLS / "pool_002_image_miri.csv"), "--is-imprt", "t"]) == 2


def test_a_scheduled_run_reads_a_directory_of_fits_files(db, tmp_path):
    """`l2rules run DIR`: the directory is one pool; a rerun with the files untouched issues nothing new."""
    from l2rules.runs import run

    directory = tmp_path / "pool_002_image_miri"
    fits_from_pool("pool_002_image_miri.csv", directory)
    # what the pool file itself gives, in a catalog of its own
    expected = len(worklist(f"sqlite:///{tmp_path / 'other.db'}", pools=[POOLS / "pool_002_image_miri.csv"],
                            source="table"))
    first = run(db, [directory])
    assert first["status"] == "succeeded" and first["items_created"] == expected > 0
    again = run(db, [directory])
    assert again["status"] == "succeeded" and again["items_created"] == 0 and again["exposures_seen"] == expected
