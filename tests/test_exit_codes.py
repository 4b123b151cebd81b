"""One exit-code table (issue 31): ``cli.EXIT_CODES``, which docs/cli.md and docs/getting-started.md are generated
from; every error class exits with a code of it, and each documented error path exits with its code."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import l2rules
from l2rules import config
from l2rules.cli import EXIT_CODES, main

from .conftest import POOLS, REPO

DOCS = REPO / "docs"


def _error_classes() -> set[type]:
    for module in pkgutil.walk_packages(l2rules.__path__, "l2rules."):
        if not module.name.endswith(("__main__", "_fits_cli")):
            importlib.import_module(module.name)
    found, todo = set(), [config.L2RulesError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo += cls.__subclasses__()
    return found


def test_every_error_exits_with_a_code_of_the_table():
    classes = _error_classes()
    assert len(classes) > 8
    assert {cls.__name__: cls.exit_code for cls in classes if cls.exit_code not in EXIT_CODES} == {}


def test_the_docs_tables_are_generated_from_it():
    for page in ("cli.md", "getting-started.md"):
        text = (DOCS / page).read_text()
        assert all(f"\n| {code} | {what} (" in text for code, (what, _) in EXIT_CODES.items()), page
        proc = subprocess.run([sys.executable, "-m", "cogapp", "--check", str(DOCS / page)], capture_output=True,
                              text=True, cwd=REPO)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bad_input_is_2_a_pool_without_asn_candidate_and_a_declined_bulk_load_too(db, tmp_path, capsys):
    pool = tmp_path / "no_candidates.csv"
    pool.write_text("FILENAME|EXP_TYPE\njw_1_uncal.fits|MIR_IMAGE\n")
    assert main(["--db", db, "worklist", str(pool)]) == 2
    assert "no ASN_CANDIDATE, TARGETID column" in capsys.readouterr().err
    assert main(["--db", db, "asn", str(pool), "-p", str(tmp_path / "asn")]) == 2
    assert main(["--db", db, "load", str(pool), "--method", "bulk"]) == 0
    assert main(["--db", db, "load", str(pool), "--method", "bulk"]) == 2  # its stems are in the catalog now
    assert "the bulk path declines this file" in capsys.readouterr().err
    assert main(["--db", db, "worklist", "--as-of", "not-a-date"]) == 2


def test_a_missing_extra_is_3_naming_it_before_any_output(db, tmp_path, capsys, monkeypatch):
    """report --html without matplotlib: nothing printed but the error (not the text report first); FITS without
    astropy; a postgresql URL without psycopg."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # (an import of it raises ImportError)
    assert main(["--db", db, "report", "--html", str(tmp_path / "r.html")]) == 3
    out, err = capsys.readouterr()
    assert out == "" and "pip install 'l2rules[report]'" in err and not (tmp_path / "r.html").exists()
    monkeypatch.setitem(sys.modules, "astropy.io.fits", None)
    fits_file = tmp_path / "jw01234001001_01101_00001_nrca1_uncal.fits"
    fits_file.write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"END" + b" " * 77 + b" " * 2720)
    assert main(["--db", db, "load", str(fits_file)]) == 3
    assert "pip install 'l2rules[fits]'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "psycopg", None)
    assert main(["--db", "postgresql+psycopg://nobody@127.0.0.1:1/none", "worklist"]) == 3
    assert "pip install 'l2rules[postgres]'" in capsys.readouterr().err


def test_no_catalog_is_3(tmp_path, capsys):
    assert main(["--db", f"sqlite:///{tmp_path / 'none.db'}", "worklist"]) == 3
    assert "l2rules init" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("code", [0, 2])
def test_the_sample_paths_exit_as_documented(db, code, tmp_path):
    pool = POOLS / "pool_002_image_miri.csv"
    args = ["worklist", str(pool)] if code == 0 else ["worklist", str(tmp_path / "missing.csv")]
    assert main(["--db", db, *args]) == code
