"""The fault suite of issue 33 ("Held under fire, part two"), on SQLite and PostgreSQL where SQL is involved.

Categories: crash (SIGTERM of a run in the middle of a statement), secrets (malformed URLs never echo a
password), migrations (broken catalogs: one line, exit 3, nothing changed; ``init`` repairs what is
certain), resources (a full disk, a read-only catalog) and input (a FITS file named by its own name).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from l2rules import get_engine
from l2rules.config import mask_url

from .runs_helpers import assert_exactly_once, cli, item_rows, spawn, write_pool


def _one_error_line(stderr: str) -> str:
    """The one line a failing command prints: no traceback, no log line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("l2rules: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# --- crash: SIGTERM ---------------------------------------------------------------------------------

def _waiting_on_a_lock(db: str) -> bool:
    """Whether a statement of another session of the test database waits for a lock (PostgreSQL)."""
    with get_engine(db).connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'active' AND wait_event_type = 'Lock'")).scalar())


def _evaluating(db: str) -> bool:
    """Whether the run has recorded its loads (it evaluates the pool next)."""
    with get_engine(db).connect() as conn:
        return bool(conn.execute(sa.text("SELECT count(*) FROM run WHERE status = 'running' "
                                         "AND exposures_seen > 0")).scalar())


def test_sigterm_in_the_middle_of_a_statement_exits_143_recorded_failed(db, backend, tmp_path):
    """PostgreSQL: the run is stopped while psycopg waits for the server (its statement waits for a lock the
    test holds); it used to leave the connection busy and exit 3 with a traceback ("another command is
    already in progress"). SQLite: stopped while it evaluates the pool."""
    pool = str(write_pool(tmp_path / "p.csv", 6000))
    holder = get_engine(db).connect() if backend == "postgresql" else None
    if holder is not None:  # the answers' table locked against writes: the run's statement waits on the server
        holder.begin()
        holder.execute(sa.text("LOCK TABLE level2b_answer IN EXCLUSIVE MODE"))
    try:
        proc = spawn(db, "run", pool, "--print", "json")
        ready = (lambda: _waiting_on_a_lock(db)) if holder is not None else (lambda: _evaluating(db))
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the run never reached the point to stop it at"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
    out, err = proc.stdout.read(), proc.stderr.read()
    assert code == 143, err
    assert _one_error_line(err) == "l2rules: error: stopped by SIGTERM"
    stopped = json.loads(out)
    assert stopped["status"] == "failed" and "SIGTERM" in stopped["error"]
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM run")).scalars().all() == ["failed"]
    assert item_rows(db) == []
    again = cli(db, "run", pool)
    assert again.returncode == 0, again.stderr
    assert_exactly_once(db)


# --- secrets: malformed URLs ------------------------------------------------------------------------

MALFORMED = [
    "postgresql//user:SECRETPW@127.0.0.1:5432/x",    # the ':' after the scheme missing
    "postgresql:/user:SECRETPW@127.0.0.1:5432/x",    # one '/' missing
    "user:SECRETPW@127.0.0.1:5432/x",                # no scheme at all
    "postgres ql://user:SECRETPW@127.0.0.1:5432/x",  # a space in the scheme
    "postgresql:user:SECRETPW@127.0.0.1/x",          # no '//'
    "postgresql://user:SECRETPW@127.0.0.1:1/x",      # well formed, nothing listens there: unreachable
    "postgresql://user:SECRETPW@127.0.0.1:5432/x?sslmode=bogus",  # refused by the driver
]


def _l2rules(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "l2rules", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "L2RULES_DATABASE_URL"})


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_url_never_prints_its_password(url, tmp_path):
    plain = _l2rules("--db", url, "runs", cwd=tmp_path)
    assert plain.returncode == 3, plain.stderr
    line = _one_error_line(plain.stderr)
    assert "SECRETPW" not in line + plain.stdout and ":***@" in line
    for command in (["init"], ["worklist"]):  # and in the logs, SQL and all
        verbose = _l2rules("--db", url, "-vv", *command, cwd=tmp_path)
        assert verbose.returncode == 3, verbose.stderr
        assert "SECRETPW" not in verbose.stderr + verbose.stdout and "Traceback" not in verbose.stderr
    from_env = subprocess.run([sys.executable, "-m", "l2rules", "worklist"], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120, env={**os.environ, "L2RULES_DATABASE_URL": url})
    assert from_env.returncode == 3 and "SECRETPW" not in _one_error_line(from_env.stderr)


def test_mask_url_covers_what_a_typo_makes_of_a_url():
    assert mask_url("URL 'postgresql//u:pw@h:5432/x': no") == "URL 'postgresql//u:***@h:5432/x': no"
    assert mask_url("u:p/w:x@h") == "u:***@h"
    assert mask_url("postgresql://u:/pw@h") == "postgresql://u:***@h"
    # nothing else: a path with an '@', a URL without a password, one with a '@' in its path
    for text in ("sqlite:////tmp/a@b.db", "postgresql://user@host/db", "http://h/p@x", "at 12:30 to me@home"):
        assert mask_url(text) == text
