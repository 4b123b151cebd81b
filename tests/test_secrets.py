"""Secrets never printed, unknown drivers a one-line exit 3 (issue 16)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from l2rules.config import mask_url

BAD_URLS = [
    "postgresql://user:SECRETPW@host:notaport/db",      # malformed: the port is not a number
    "postgresql+psycopg2://u:SECRETPW@127.0.0.1/test",  # a driver l2rules does not install
    "mysql://u:SECRETPW@localhost/db",                  # a database l2rules does not support
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("command", [["rules", "list"], ["worklist"], ["init"]])
def test_bad_urls_exit_3_on_one_line_without_the_password(url, command, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "l2rules", "--db", url, *command], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "SECRETPW" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("l2rules: error:")


def test_mask_url_hides_every_password_and_nothing_else():
    text = "a postgresql+psycopg://me:p%40ss@h:5432/db and sqlite:////tmp/x.db and http://h/p@x"
    assert mask_url(text) == "a postgresql+psycopg://me:***@h:5432/db and sqlite:////tmp/x.db and http://h/p@x"
    assert mask_url("postgresql://user@host/db") == "postgresql://user@host/db"
