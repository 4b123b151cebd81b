"""`l2rules report`: the terminal summary and the HTML page, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import re

import pytest

from l2rules import catalog
from l2rules.cli import main
from l2rules.report import report, tables
from l2rules.runs import run

from .conftest import POOLS, SAMPLE_POOLS


@pytest.fixture
def reported(db):
    run([POOLS / name for name in SAMPLE_POOLS], db, skip_bad=True)
    return db


def test_tables_match_the_catalog(reported):
    data = tables(reported)
    summary = data["summary"].iloc[0]
    assert summary["catalog_revision"] == catalog.versions(reported)["revision"].iloc[-1]  # the head
    assert summary["work_list"] == summary["issued"] == data["work_items"]["work_items"].sum() == 64
    assert summary["pending"] == 0 and summary["unmatched"] == 8 and summary["runs"] == 1
    assert set(data["work_items"]["asn_type"]) == {"image2", "spec2"}
    assert data["roles"]["exposures"].sum() == data["exposures"]["exposures"].sum() == summary["exposures"]
    assert data["unmatched"]["exposures"].sum() == 8
    assert list(data["runs"]["status"]) == ["succeeded"]


def test_terminal_summary(reported):
    out = io.StringIO()
    report(reported, stream=out)
    text = out.getvalue()
    assert f"catalog revision:      {catalog.versions(reported)['revision'].iloc[-1]}" in text
    assert "current work list:     64 items: 64 issued by runs, 0 pending" in text
    for title in ("Work items per instrument and association type", "Exposures per instrument and role",
                  "Unmatched exposures", "Latest runs"):
        assert title in text
    assert re.search(r"NIRSpec\s+spec2\s+20\s+20", text)


def test_html_page(reported, tmp_path, capsys):
    page = tmp_path / "report.html"
    assert main(["--db", reported, "report", "--html", str(page)]) == 0
    assert f"HTML report written to {page}" in capsys.readouterr().out
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "plotly" in html and "Plotly.newPlot" in html       # the chart, with plotly.js inlined
    assert "<script src=\"http" not in html                   # self-contained: no network to view it
    for title in ("Work items per instrument and association type", "Exposures per instrument, EXP_TYPE and role",
                  "Unmatched exposures", "Latest runs"):
        assert title in html
    assert html.count("<table>") == 5
    # One bar series per association type, over the instruments that have such items.
    assert '"name":"image2"' in html and '"x":["FGS","MIRI","NIRCam","NIRISS","NIRSpec"]' in html
    assert '"name":"spec2"' in html and '"x":["MIRI","NIRISS","NIRSpec"]' in html


def test_report_on_an_empty_catalog(db, tmp_path):
    out = io.StringIO()
    report(db, html=tmp_path / "empty.html", stream=out)
    assert "0 items" in out.getvalue() and "(no rows)" in out.getvalue()
    assert "The work list is empty" in (tmp_path / "empty.html").read_text()
