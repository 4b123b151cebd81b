"""The command line follows the conventions users know (issue 14): --version, global options before or after
the command, --from/--to, output directories created, timestamped log lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata

import pandas as pd
import pytest

from l2rules import catalog
from l2rules.cli import build_parser, main

from .runs_helpers import write_pool


def l2rules(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "l2rules", *args], capture_output=True, text=True, cwd=cwd,
                          env=os.environ.copy(), timeout=120)


# 1. --version is the program's version; the catalog point is --catalog-version.

def test_version_prints_the_program_version_and_exits_0():
    proc = l2rules("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"l2rules {metadata.version('l2rules')}"
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0


def test_catalog_version_selects_a_revision(db, capsys):
    revisions = list(catalog.versions(db)["revision"])
    oldest = revisions[0]
    assert main(["--db", db, "rules", "list", "--catalog-version", oldest, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(catalog.rules(db, version=oldest)) > 0
    assert main(["--db", db, "rules", "list", "--catalog-version", "9999"]) == 2
    assert "unknown catalog version '9999'" in capsys.readouterr().err
    # --catalog-version is one catalog point among --as-of and --pipeline
    with pytest.raises(SystemExit) as exit_:
        main(["--db", db, "rules", "list", "--catalog-version", oldest, "--as-of", "2020-01-01"])
    assert exit_.value.code == 2
    # the old spelling is no longer a catalog point
    with pytest.raises(SystemExit) as exit_:
        main(["--db", db, "rules", "list", "--version", oldest])
    assert exit_.value.code == 2


def test_help_names_catalog_version_not_version_rev():
    for command in (["worklist"], ["rules", "list"], ["asn"], ["explain"]):
        proc = l2rules(*command, "--help")
        assert proc.returncode == 0
        assert "--catalog-version REV" in proc.stdout, command
        assert not re.search(r"(?<!catalog)-version REV", proc.stdout), command
