#!/usr/bin/env python3
"""The fault suite: l2rules driven as a user drives it, under faults, on SQLite and PostgreSQL.

Every check runs ``python -m l2rules`` (or, for DataFrames, the Python API) in a process of
its own and asserts what can fail: the exit code is the documented one (``cli.EXIT_CODES``),
an error is one line on standard error without a traceback naming file:line:column where
the fault has a position, a refusal leaves the catalog's rows as they were, SQLite's
``PRAGMA integrity_check`` says ok, no process is left, no password is printed.

Categories (``--categories``, default all):

- ``badfiles``: hostile and odd pool files made from a sample pool (truncated lines, wrong
  column counts, NUL bytes, BOM, CRLF, non-UTF-8, a FIFO, a symlink loop, ...), through
  ``load --method rows`` and ``--method bulk``, and bad arguments (dates);
- ``dataframes``: ``l2rules.load(db, df)`` and ``Catalog.worklist(inventory=df)`` with odd
  dtypes, NaN and missing columns: an L2RulesError, nothing stored;
- ``crash``: SIGKILL at random moments (``--seed``) of every writing command (load both
  paths, run, init, asn, rules revision), SIGTERM of run: all or nothing, integrity ok,
  no process left, a clean rerun (the helpers of ``scripts/crash_drills.py``);
- ``concurrency``: first use by several processes at once, runs at once (exit 5 or wait),
  loads and reads during a load, no duplicate work item;
- ``secrets``: passwords in well-formed and malformed URLs never printed, with -v and -vv;
- ``migrations``: downgrade and upgrade with pools loaded keep the rows; broken catalogs
  (two alembic_version rows, a missing table, ...) exit 3 with one line, nothing changed;
- ``resources``: disk full (a small tmpfs) and read-only databases (a read-only mount, a
  read-only PostgreSQL database): exit 3 (database) or 2 (output path), one line, nothing
  half written.

    python scripts/faults.py                       # full: both backends, every category
    python scripts/faults.py --bounded             # a few minutes: fewer kills, sampled files
    python scripts/faults.py --categories badfiles,secrets --backends sqlite -v

Prints each failed check with its output, then ``CATEGORY: N checks, P pass, F fail`` per
category and a total; exits 1 if any check failed. Checks named in ``KNOWN_FAILING`` (faults
found and being fixed) are listed as such; one of them that passes is reported "fixed".
The ``resources`` category mounts tmpfs file systems: it needs root (else it is skipped,
said so). PostgreSQL: $L2RULES_TEST_POSTGRES_URL (default the local server), scratch
databases ``fault_suite_*`` created and dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import crash_drills as drills  # noqa: E402  (the kill helpers, shared with tests/test_crash.py)

SAMPLE = REPO / "samples" / "pools" / "pool_002_image_miri.csv"
OTHER = REPO / "samples" / "pools" / "jw87800_20180412T163456_pool.csv"  # in every prepared catalog; no file in common
SECRET = "S3cr3tPw9"
CATEGORIES = ("badfiles", "dataframes", "crash", "concurrency", "secrets", "migrations", "resources")

#: Checks known to fail, for faults being fixed (glob patterns of check names): printed with each run, counted
#: apart, and taken off as the fixes land. Empty since issues 32 and 33's fixes landed.
KNOWN_FAILING: list[str] = []


class CheckFailed(AssertionError):
    """A check's assertion failed: the message says what was expected and what came."""


# --- running l2rules -------------------------------------------------------------------------------

@dataclass
class Ran:
    args: list[str]
    code: int
    out: str
    err: str
    seconds: float

    def show(self) -> str:
        cmd = " ".join(self.args[2:])
        return (f"$ {cmd}\n  exit {self.code}\n  stderr: {self.err.strip()[-1500:]!r}\n"
                f"  stdout: {self.out.strip()[-300:]!r}")


def _use_this_l2rules() -> None:
    """The commands run the l2rules this script imports, whatever their working directory (a relative
    PYTHONPATH, as ``PYTHONPATH=src``, would name another one from a temporary directory)."""
    import l2rules

    here = str(Path(l2rules.__file__).resolve().parent.parent)
    rest = [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([here, *rest])


def _without_root_powers() -> None:
    """Root reads any file: the command runs without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (dropped from
    the bounding set before exec), so file permissions apply to it as to any user."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP


def l2(db: str | None, *args: str, env: dict | None = None, timeout: float = 180, cwd: Path | None = None,
       stdin: str | None = None, as_user: bool = False) -> Ran:
    """``python -m l2rules [--db DB] ARGS``, to its end (a hang is a failure: ``timeout``).

    ``as_user``: without root's power to read and write any file."""
    cmd = [sys.executable, "-m", "l2rules", *(["--db", db] if db else []), *args]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout, cwd=cwd,
                              env={**os.environ, **(env or {})}, input=stdin,
                              stdin=None if stdin is not None else subprocess.DEVNULL,
                              preexec_fn=_without_root_powers if as_user and os.geteuid() == 0 else None)
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"$ {' '.join(cmd[2:])}\n  no answer within {timeout:g} s (a hang)") from exc
    return Ran(cmd, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def expect(cond: bool, what: str, ran: Ran | None = None) -> None:
    if not cond:
        raise CheckFailed(what + ("\n" + ran.show() if ran else ""))


def exit_code(ran: Ran, code: int) -> None:
    expect(ran.code == code, f"exit {ran.code}, expected {code}", ran)
    expect("Traceback" not in ran.err, "a traceback on standard error", ran)


def one_line(ran: Ran, code: int, *names: str, line: int | None = None, column: bool | int = False) -> str:
    """Exit ``code``, and standard error one line ``l2rules: error: ...`` naming ``names`` (and where)."""
    exit_code(ran, code)
    lines = [x for x in ran.err.splitlines() if x.strip()]
    expect(len(lines) == 1, f"{len(lines)} lines on standard error, expected 1", ran)
    text = lines[0]
    expect(text.startswith("l2rules: error: "), "the line does not start 'l2rules: error: '", ran)
    for name in names:
        expect(name in text, f"the line does not name {name!r}", ran)
    if line is not None:
        expect(any(f"{n}:{line}:" in text for n in names) if names else f":{line}:" in text,
               f"the line does not name line {line} as FILE:{line}:", ran)
    if column is True:
        expect(re.search(r"column \S+", text) is not None, "the line names no column", ran)
    elif column:
        expect(f"column {column}" in text, f"the line does not name column {column}", ran)
    return text


def ok(ran: Ran) -> Ran:
    exit_code(ran, 0)
    return ran


# --- catalogs --------------------------------------------------------------------------------------

class Databases(drills.Databases):
    """The drills' scratch catalogs, the PostgreSQL ones named ``fault_suite_*``."""

    prefix = "fault_suite_"

    def drop(self, url: str) -> None:
        """SQLite files at once; PostgreSQL databases at the end (``cleanup``): a DROP DATABASE waits for a
        checkpoint, seconds each on a busy server."""
        if url.startswith("sqlite"):
            super().drop(url)

    def cleanup(self) -> None:
        """The PostgreSQL databases dropped together: their drops share the checkpoints they wait for."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(self._drop_pg, list(self.created)))


def counts(url: str) -> dict[str, int]:
    """The rows of the tables a refusal must leave as they were."""
    tables = ("pool", "exposure", "exposure_candidate", "load_rejection", "work_item", "run")
    sql = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)
    (row,) = drills._query(url, sql)
    return dict(zip(tables, row))


def integrity(url: str) -> None:
    try:
        drills.integrity(url)
    except drills.DrillFailure as exc:
        raise CheckFailed(str(exc)) from None


def unchanged(url: str, before: dict[str, int], ran: Ran | None = None) -> None:
    integrity(url)
    after = counts(url)
    expect(after == before, f"rows changed by a refusal: {before} -> {after}", ran)


def short(backend: str) -> str:
    return "sqlite" if backend == "sqlite" else "pg"


# --- the suite -------------------------------------------------------------------------------------

@dataclass
class Result:
    category: str
    name: str
    passed: bool
    detail: str
    seconds: float
    known: bool = False


@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path
    backends: list[str]
    rng: random.Random
    dbs: Databases
    results: list[Result] = field(default_factory=list)
    crash_rows: int = 0

    @property
    def bounded(self) -> bool:
        return self.args.bounded

    def sample(self, items: list, n: int) -> list:
        """All of ``items`` in a full run; ``n`` of them, chosen by the seed, when bounded."""
        if not self.bounded or len(items) <= n:
            return list(items)
        keep = set(self.rng.sample(range(len(items)), n))
        return [x for i, x in enumerate(items) if i in keep]

    def check(self, category: str, name: str, fn: Callable[..., object], *args, **kwargs) -> bool:
        full = f"{category}/{name}"
        started = time.monotonic()
        try:
            fn(*args, **kwargs)
            passed, detail = True, ""
        except (CheckFailed, drills.DrillFailure) as exc:
            passed, detail = False, str(exc)
        except Exception:  # the suite's own bug, or an answer it did not foresee: a failure, shown whole
            passed, detail = False, "the check raised:\n" + traceback.format_exc(limit=6)
        known = any(fnmatch.fnmatchcase(full, pattern) for pattern in KNOWN_FAILING)
        result = Result(category, full, passed, detail, time.monotonic() - started, known)
        self.results.append(result)
        if not passed:
            label = "FAIL (known)" if known else "FAIL"
            print(f"{label} {full} ({result.seconds:.1f} s)\n  " + detail.replace("\n", "\n  "), flush=True)
        elif self.args.verbose:
            print(f"pass {full} ({result.seconds:.1f} s)" + (" (known failing: fixed)" if known else ""), flush=True)
        return passed

    def fresh(self, backend: str) -> str:
        """A catalog at the head with one pool (:data:`OTHER`) loaded: a refusal must leave it as it is."""
        return self.dbs.migrated(backend)

    def empty(self, backend: str) -> str:
        return self.dbs.empty(backend)


# ===================================================================================================
# badfiles
# ===================================================================================================

@dataclass
class Bad:
    """A hostile or odd input file and what the loaders must do with it.

    ``make(dir)`` makes it and returns the path (or argument) to load. ``line``: the line the
    error names (None: the file as a whole); ``column``: whether it names a column too.
    ``loads``: the exposures it loads when it is odd but valid (None: it must be refused).
    ``bulk``: the bulk path may decline it (exit 2) where the row loader loads it.
    """

    name: str
    make: Callable[[Path], Path | str]
    line: int | None = None
    column: bool = False
    loads: int | None = None
    code: int = 2


def _sample_lines() -> list[str]:
    return SAMPLE.read_text().splitlines(keepends=True)


HEADER_LINE = next(i for i, x in enumerate(_sample_lines(), 1) if x.lower().startswith("filename|"))
FIRST_ROW = HEADER_LINE + 1
N_ROWS = len(_sample_lines()) - HEADER_LINE
N_COLUMNS = _sample_lines()[HEADER_LINE - 1].count("|") + 1


def _write(directory: Path, name: str, data: bytes | str) -> Path:
    path = directory / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _edit(name: str, edit: Callable[[list[str]], list[str]], suffix: str = ".csv") -> Callable[[Path], Path]:
    """A file made from the sample's lines by ``edit`` (lines with their line ends)."""
    return lambda d: _write(d, name + suffix, "".join(edit(_sample_lines())))


def _row(n: int) -> int:
    """The index in the sample's lines of data row ``n`` (0-based)."""
    return HEADER_LINE + n


def _set_field(lines: list[str], row: int, column: str, value: str) -> list[str]:
    header = lines[HEADER_LINE - 1].rstrip("\r\n").split("|")
    i = header.index(column)
    fields = lines[_row(row)].rstrip("\r\n").split("|")
    fields[i] = value
    lines[_row(row)] = "|".join(fields) + "\n"
    return lines


def _field(row: int, column: str, value: str) -> Callable[[list[str]], list[str]]:
    return lambda lines: _set_field(lines, row, column, value)


def _header(edit: Callable[[list[str]], list[str]]) -> Callable[[list[str]], list[str]]:
    def change(lines: list[str]) -> list[str]:
        names = lines[HEADER_LINE - 1].rstrip("\r\n").split("|")
        lines[HEADER_LINE - 1] = "|".join(edit(names)) + "\n"
        return lines
    return change


def _drop_column(name: str) -> Callable[[list[str]], list[str]]:
    def change(lines: list[str]) -> list[str]:
        header = lines[HEADER_LINE - 1].rstrip("\n").split("|")
        i = header.index(name)
        return lines[:HEADER_LINE - 1] + ["|".join(f for j, f in enumerate(x.rstrip("\n").split("|")) if j != i) + "\n"
                                          for x in lines[HEADER_LINE - 1:]]
    return change


def _bytes_edit(name: str, edit: Callable[[bytes], bytes]) -> Callable[[Path], Path]:
    return lambda d: _write(d, name + ".csv", edit(SAMPLE.read_bytes()))


def _replace_in_row(row: int, old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        lines = data.splitlines(keepends=True)
        lines[_row(row)] = lines[_row(row)].replace(old, new, 1)
        return b"".join(lines)
    return change


def _fifo(d: Path) -> Path:
    path = d / "fifo.csv"
    os.mkfifo(path)
    return path


def _loop(d: Path) -> Path:
    a, b = d / "loop_a.csv", d / "loop_b.csv"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def _dangling(d: Path) -> Path:
    path = d / "dangling.csv"
    path.symlink_to(d / "nowhere.csv")
    return path


def _directory(d: Path) -> Path:
    path = d / "a_directory.csv"
    path.mkdir()
    return path


def _dir_of_csv(d: Path) -> Path:
    path = d / "dir_with_pool"
    path.mkdir()
    shutil.copy(SAMPLE, path / SAMPLE.name)
    return path


def _unreadable(d: Path) -> Path:
    path = _write(d, "unreadable.csv", SAMPLE.read_bytes())
    path.chmod(0)
    return path


def _fits(d: Path, exp_type: str, name: str = "jw01234001001_01101_00001_nrca1_uncal.fits") -> Path:
    from astropy.io import fits

    directory = d / f"fits_{exp_type.lower()}"
    directory.mkdir()
    header = fits.Header()
    for key, value in {"FILENAME": name, "EXP_TYPE": exp_type, "PROGRAM": "01234", "OBSERVTN": "001",
                       "VISIT": "001", "INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "TARGETID": 1,
                       "ASNPOOL": "", "VISITGRP": "01", "SEQ_ID": "1", "ACT_ID": "01", "EXPOSURE": 1}.items():
        header[key] = value
    fits.PrimaryHDU(header=header).writeto(directory / name)
    return directory


def _truncated_fits(d: Path) -> Path:
    good = _fits(d, "NRC_IMAGE")
    (path,) = good.glob("*.fits")
    path.write_bytes(path.read_bytes()[:300])
    return path


def _big_header(d: Path) -> Path:
    lines = _sample_lines()
    extra = [f"x{i}" for i in range(5000)]
    lines = lines[:HEADER_LINE - 1] + [lines[HEADER_LINE - 1].rstrip("\n") + "|" + "|".join(extra) + "\n"] + \
        [x.rstrip("\n") + "|" + "|".join("v" for _ in extra) + "\n" for x in lines[HEADER_LINE:]]
    return _write(d, "wide.csv", "".join(lines))


def _comma(d: Path) -> Path:
    lines = _sample_lines()[HEADER_LINE - 1:]
    out = []
    for x in lines:
        fields = x.rstrip("\n").split("|")
        out.append(",".join(f'"{f}"' if "," in f else f for f in fields) + "\n")
    return _write(d, "comma.csv", "".join(out))


def _injection(d: Path) -> Path:
    marker = d / "INJECTED"
    return _edit("candidate_injection", _field(2, "asn_candidate",
                 f"__import__('os').system('touch {marker}')"))(d)


def bad_files() -> list[Bad]:
    """50+ hostile and odd files, each made from the sample pool (``samples/pools``)."""
    h, r0, last = HEADER_LINE, FIRST_ROW, FIRST_ROW + N_ROWS - 1
    sample = SAMPLE.read_bytes()
    rows = _sample_lines()
    return [
        # -- the file as a whole
        Bad("empty_file", lambda d: _write(d, "empty.csv", b"")),
        Bad("whitespace_only", lambda d: _write(d, "blank.csv", "\n  \n\t\n")),
        Bad("comments_only", _edit("comments_only", lambda x: x[:h - 1])),
        Bad("header_only", _edit("header_only", lambda x: x[:h]), loads=0),
        Bad("header_only_no_newline", _edit("header_only_nl", lambda x: x[:h - 1] + [x[h - 1].rstrip("\n")]),
            loads=0),
        Bad("all_nul_bytes", lambda d: _write(d, "nul.csv", b"\0" * 4096)),
        Bad("random_binary", lambda d: _write(d, "binary.csv", random.Random(7).randbytes(8192))),
        Bad("gzip_named_csv", lambda d: _write(d, "gz.csv", gzip.compress(sample))),
        Bad("utf16_file", lambda d: _write(d, "utf16.csv", sample.decode().encode("utf-16"))),
        Bad("tab_delimited", lambda d: _write(d, "tabs.csv", sample.replace(b"|", b"\t"))),
        # -- the header
        Bad("duplicate_header_exp_type", _edit("dup_exp_type", _header(lambda n: [*n[:-1], "exp_type"])), line=h),
        Bad("duplicate_header_filename", _edit("dup_filename", _header(lambda n: [*n[:-1], "FILENAME"])), line=h),
        Bad("duplicate_header_other", _edit("dup_other", _header(lambda n: [*n[:-1], "program"])), line=h),
        Bad("missing_column_filename", _edit("no_filename", _drop_column("filename"))),
        Bad("missing_column_exp_type", _edit("no_exp_type", _drop_column("exp_type"))),
        Bad("header_extra_name", _edit("header_extra", _header(lambda n: [*n, "extra"])), line=r0, column=True),
        Bad("header_missing_name", _edit("header_short", _header(lambda n: n[:-1])), line=r0, column=True),
        Bad("header_upper_case", _edit("upper", _header(lambda n: [x.upper() for x in n])), loads=N_ROWS),
        Bad("header_empty_name", _edit("header_empty_name", _header(lambda n: [n[0], "", *n[2:]])),
            loads=N_ROWS),
        Bad("header_nul", _bytes_edit("header_nul", lambda b: b.replace(b"|exp_type|", b"|exp\0type|", 1)),
            line=h),
        Bad("header_not_utf8", _bytes_edit("header_latin1", lambda b: b.replace(b"|targname|", b"|targn\xe9m|", 1)),
            line=h),
        Bad("header_huge_name", _edit("header_huge", _header(lambda n: [*n[:-1], "t" * 100_000])),
            loads=N_ROWS),
        Bad("header_5000_more_columns", _big_header, loads=N_ROWS),
        # -- line ends, encodings
        Bad("bom", _bytes_edit("bom", lambda b: b"\xef\xbb\xbf" + b), loads=N_ROWS),
        Bad("crlf", _bytes_edit("crlf", lambda b: b.replace(b"\n", b"\r\n")), loads=N_ROWS),
        Bad("bom_crlf", _bytes_edit("bom_crlf", lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n")), loads=N_ROWS),
        Bad("cr_only", _bytes_edit("cr_only", lambda b: b.replace(b"\n", b"\r"))),
        Bad("no_final_newline", _bytes_edit("no_final_nl", lambda b: b.rstrip(b"\n")), loads=N_ROWS),
        Bad("blank_lines_between_rows", _edit("blank_lines", lambda x: [y + "\n" if i > h else y
                                                                         for i, y in enumerate(x)]), loads=N_ROWS),
        Bad("not_utf8_value", _bytes_edit("latin1_value", _replace_in_row(3, b"dil-ngc-3603", b"dil-ngc-\xe93603")),
            line=r0 + 3, column=True),
        Bad("overlong_utf8", _bytes_edit("overlong", _replace_in_row(3, b"dil-ngc", b"dil\xc0\xafngc")),
            line=r0 + 3, column=True),
        Bad("nul_in_value", _bytes_edit("nul_value", _replace_in_row(2, b"dil-ngc", b"dil\0ngc")),
            line=r0 + 2, column=True),
        Bad("control_char_in_value", _bytes_edit("ctrl_value", _replace_in_row(4, b"dil-ngc", b"dil\x1bngc")),
            line=r0 + 4, column=True),
        Bad("nul_in_filename", _bytes_edit("nul_filename", _replace_in_row(1, b"_uncal", b"\0uncal")),
            line=r0 + 1, column=True),
        # -- rows
        Bad("truncated_last_line", lambda d: _write(d, "truncated_last.csv", sample.rstrip(b"\n")[:-60])),
        Bad("truncated_middle_line", _edit("truncated_mid", lambda x: x[:_row(3)] + [x[_row(3)][:50] + "\n"]
                                           + x[_row(4):]), line=r0 + 3, column=True),
        Bad("extra_field", _edit("extra_field", lambda x: x[:_row(5)] + [x[_row(5)].rstrip("\n") + "|x\n"]
                                 + x[_row(6):]), line=r0 + 5, column=True),
        Bad("missing_field", _edit("missing_field", lambda x: x[:_row(2)] + [x[_row(2)].rsplit("|", 1)[0] + "\n"]
                                   + x[_row(3):]), line=r0 + 2, column=True),
        Bad("bad_quoting", _bytes_edit("bad_quote", _replace_in_row(3, b"|dil-ngc-3603|", b'|"dil-ngc|3603|')),
            line=r0 + 3, column=True),
        Bad("quoted_fields", _bytes_edit("quoted", lambda b: b.replace(b"|mir_image|", b'|"mir_image"|')),
            loads=N_ROWS),
        Bad("huge_field", _edit("huge_field", _field(1, "targname", "x" * 2_000_000)), loads=N_ROWS),
        Bad("huge_filename", _edit("huge_filename", _field(1, "filename", "jw" + "9" * 300 + "_uncal.fits")),
            line=r0 + 1, column=True),
        Bad("huge_exp_type", _edit("huge_exp_type", _field(1, "exp_type", "MIR_" + "X" * 60)),
            line=r0 + 1, column=True),
        Bad("empty_filename", _edit("empty_filename", _field(2, "filename", "")), line=r0 + 2, column=True),
        Bad("null_filename", _edit("null_filename", _field(2, "filename", "null")), line=r0 + 2, column=True),
        Bad("empty_exp_type", _edit("empty_exp_type", _field(3, "exp_type", "")), line=r0 + 3, column=True),
        Bad("unknown_exp_type", _edit("unknown_exp_type", _field(3, "exp_type", "mir_bogus")), loads=N_ROWS),
        Bad("exp_type_with_spaces", _edit("exp_type_spaces", _field(3, "exp_type", "  mir_image  ")), loads=N_ROWS),
        Bad("bad_candidate_syntax", _edit("bad_candidate", _field(2, "asn_candidate", "[('o001', 'observation'")),
            line=r0 + 2, column=True),
        Bad("candidate_code_injection", _injection, line=r0 + 2, column=True),
        Bad("candidate_empty_list", _edit("candidate_empty", _field(2, "asn_candidate", "[]")), loads=N_ROWS),
        Bad("candidate_10000_pairs", _edit("candidate_many", _field(2, "asn_candidate", "[" + ", ".join(
            f"('c{i}', 'background')" for i in range(10000)) + "]")), line=r0 + 2, column=True),
        Bad("duplicate_row", _edit("dup_row", lambda x: x + [x[_row(1)]]), loads=N_ROWS),
        Bad("conflicting_duplicate", _edit("conflict_dup", lambda x: x + [x[_row(1)].replace("mir_image", "mir_lyot")]),
            line=last + 1, column=True),
        Bad("comment_between_rows", _edit("comment_rows", lambda x: x[:_row(4)] + ["# a note\n"] + x[_row(4):]),
            loads=N_ROWS),
        Bad("bad_dates", lambda d: _write(d, "bad_dates.csv", "".join(
            [*rows[:h - 1], rows[h - 1].rstrip("\n") + "|date_obs\n",
             *(x.rstrip("\n") + "|" + ["2024-13-45", "yesterday", "", "0000-00-00", "2024-02-30", "9" * 40,
                                       "2024-01-01T25:61:61", "null"][i % 8] + "\n"
               for i, x in enumerate(rows[h:]))])), loads=N_ROWS),
        Bad("flag_garbage", _edit("flag_garbage", _field(1, "tsovisit", "maybe\u2603")), loads=N_ROWS),
        Bad("number_garbage", _edit("number_garbage", _field(1, "program", "ninety-nine")), loads=N_ROWS),
        # -- what is not a readable file
        Bad("missing_file", lambda d: d / "no_such_pool.csv"),
        Bad("directory_named_csv", _directory),
        Bad("directory_of_pools", _dir_of_csv),
        Bad("fifo", _fifo),
        Bad("symlink_loop", _loop),
        Bad("dangling_symlink", _dangling),
        Bad("unreadable", _unreadable),
        Bad("fits_unknown_exp_type", lambda d: _fits(d, "NRC_BOGUS"), loads=1),
        Bad("fits_overlong_exp_type", lambda d: _fits(d, "NRC_" + "X" * 60)),
        Bad("fits_truncated", _truncated_fits),
        Bad("fits_name_text_inside", lambda d: _write(d, "text_uncal.fits", sample)),
        Bad("option_like_name", lambda d: str(_write(d, "-pool.csv", sample).name), loads=N_ROWS),
    ]


def _check_bad(ctx: Context, backend: str, method: str, bad: Bad) -> None:
    """Load ``bad`` into a prepared catalog: refused (one line, where, nothing changed) or loaded whole."""
    directory = Path(tempfile.mkdtemp(prefix="bad_", dir=ctx.workdir))
    url = ctx.fresh(backend)
    try:
        target = bad.make(directory)
        before = counts(url)
        is_fits = bad.name.startswith("fits_") or str(target).endswith(".fits")
        args = ["load", *(["--method", method] if not is_fits else []), "--", str(target)]
        cwd = directory if bad.name == "option_like_name" else ctx.workdir
        ran = l2(url, *args, timeout=60, as_user=bad.name == "unreadable", cwd=cwd)
        name = Path(str(target)).name
        if bad.name in ("fits_unknown_exp_type", "fits_overlong_exp_type"):
            name = next(Path(target).glob("*.fits")).name  # the file, not its directory (issue 33)
        if bad.loads is not None and not (method == "bulk" and ran.code == 2):
            ok(ran)
            after = counts(url)
            expect(after["exposure"] - before["exposure"] == bad.loads,
                   f"{after['exposure'] - before['exposure']} exposures loaded, expected {bad.loads}", ran)
            integrity(url)
            if bad.name == "unknown_exp_type":
                unmatched = ok(l2(url, "unmatched", "--format", "csv"))
                expect("mir_bogus" in unmatched.out.lower(), "`unmatched` does not list the unknown EXP_TYPE",
                       unmatched)
            return
        if method == "bulk" and "the bulk path declines this file" in ran.err:  # the file, not a line: documented
            text = one_line(ran, 2, name)
        else:
            text = one_line(ran, bad.code, name, line=bad.line, column=bad.column)
        expect(len(text) < 400, f"an error line of {len(text)} characters", ran)
        unchanged(url, before, ran)
        if bad.name == "candidate_code_injection":
            expect(not (directory / "INJECTED").exists(), "the candidate list was run as code")
    finally:
        ctx.dbs.drop(url)
        with contextlib.suppress(OSError):
            shutil.rmtree(directory)


BAD_ARGS = [  # (name, arguments, exit code, what the line names)
    ("as_of_month_13", ["worklist", "--as-of", "2024-13-01"], 2, "2024-13-01"),
    ("as_of_feb_30", ["worklist", "--as-of", "2024-02-30"], 2, "2024-02-30"),
    ("as_of_word", ["worklist", "--as-of", "tomorrow"], 2, "tomorrow"),
    ("as_of_option_like", ["worklist", "--as-of", "-2024-01-01"], 2, "--as-of"),
    ("as_of_empty", ["worklist", "--as-of", ""], 2, "not a date"),
    ("catalog_version_unknown", ["worklist", "--catalog-version", "9999"], 2, "9999"),
    ("pipeline_unknown", ["worklist", "--pipeline", "0.0.1"], 2, "0.0.1"),
    ("rules_diff_bad_date", ["rules", "diff", "--from", "2024-00-01", "--to", "head"], 2, "2024-00-01"),
    ("revision_bad_date", ["rules", "revision", "-m", "x", "--ref", "r", "--date", "2024-99-99"], 2, "2024-99-99"),
]


def cat_badfiles(ctx: Context) -> None:
    files = bad_files()
    for backend in ctx.backends:
        for method in ("rows", "bulk"):
            chosen = ctx.sample(files, (14 if method == "rows" else 5) if backend == "sqlite" else
                                (6 if method == "rows" else 3))
            for bad in chosen:
                if method == "bulk" and bad.name.startswith("fits_"):
                    continue  # FITS input has one path: checked once, with rows
                ctx.check("badfiles", f"{short(backend)}/{method}/{bad.name}", _check_bad, ctx, backend, method, bad)
        url = ctx.fresh(backend)
        try:
            for name, args, code, names in ctx.sample(BAD_ARGS, 3):
                def check(args=args, code=code, names=names) -> None:
                    before = counts(url)
                    one_line(l2(url, *args, cwd=ctx.workdir), code, names)
                    unchanged(url, before)
                ctx.check("badfiles", f"{short(backend)}/args/{name}", check)
        finally:
            ctx.dbs.drop(url)


# ===================================================================================================
# dataframes
# ===================================================================================================

def _frames() -> dict[str, tuple[object, bool]]:
    """Odd DataFrames (and things that are not one): name -> (frame, whether it must be refused)."""
    import numpy as np
    import pandas as pd

    n = 5
    base = {"filename": [f"jw_df_{i:03d}_uncal.fits" for i in range(n)], "exp_type": ["NRC_IMAGE"] * n,
            "asn_candidate": ["[('o001', 'observation')]"] * n, "program": ["01234"] * n}

    def frame(**changes) -> pd.DataFrame:
        data = {**base, **changes}
        return pd.DataFrame({k: v for k, v in data.items() if v is not None})

    dup = frame()
    dup.columns = ["filename", "exp_type", "filename", "program"]
    multi = frame()
    multi.columns = pd.MultiIndex.from_tuples([(c, "x") for c in multi.columns])
    return {
        "missing_filename": (frame(filename=None), True),
        "missing_exp_type": (frame(exp_type=None), True),
        "nan_filename": (frame(filename=[np.nan, *base["filename"][1:]]), True),
        "none_filename": (frame(filename=[None, *base["filename"][1:]]), True),
        "nan_exp_type": (frame(exp_type=[np.nan, *base["exp_type"][1:]]), True),
        "int_exp_type": (frame(exp_type=list(range(n))), False),
        "float_filename": (frame(filename=[float(i) + 0.5 for i in range(n)]), False),
        "duplicate_columns": (dup, True),
        "multiindex_columns": (multi, True),
        "no_columns": (pd.DataFrame(), True),
        "nul_in_value": (frame(exp_type=["NRC\0IMAGE", *base["exp_type"][1:]]), True),
        "overlong_filename": (frame(filename=["x" * 300 + "_uncal.fits", *base["filename"][1:]]), True),
        "bad_candidates": (frame(asn_candidate=["[('o001'"] * n), True),
        "a_list": ([1, 2, 3], True),
        "a_dict": ({"filename": "x"}, True),
        "bytes_values": (frame(exp_type=[b"NRC_IMAGE"] * n), False),
        "categorical_exp_type": (frame(exp_type=pd.Categorical(base["exp_type"])), False),
        "arrow_strings": (frame().astype("string[pyarrow]"), False),
        "zero_rows": (frame().iloc[:0], False),
        "upper_case_columns": (frame().rename(columns=str.upper), False),
        "int_program": (frame(program=list(range(n))), False),
        "nan_program": (frame(program=[np.nan] * n), False),
        "inf_program": (frame(program=[np.inf] * n), False),
        "datetime_column": (frame(date_obs=pd.date_range("2024-01-01", periods=n)), False),
        "string_index": (frame().set_index(pd.Index(list("abcde"))), False),
        "object_mixed": (frame(program=[1, "2", 3.5, None, b"5"]), False),
    }


def _dataframe_worker(url: str, names: list[str]) -> None:
    """In a process of its own: each frame through ``l2rules.load`` and ``Catalog.worklist``; JSON lines out."""
    import l2rules

    catalog = l2rules.Catalog(url)
    for number, (name, (frame, refuse)) in enumerate(_frames().items()):
        if name not in names:
            continue
        if hasattr(frame, "columns") and "filename" in frame.columns and not isinstance(frame.columns[0], tuple):
            frame = frame.copy()  # file names of its own: each frame's exposures are new ones
            frame["filename"] = [f"{v}".replace("jw_df_", f"jw_df{number:02d}_") if isinstance(v, str) else v
                                 for v in frame["filename"]]
        for api in ("load", "worklist"):
            before = counts(url)
            error = None
            try:
                if api == "load":
                    l2rules.load(url, frame)
                else:
                    catalog.worklist(inventory=frame)
            except Exception as exc:  # what it raised is the answer, judged by the parent
                error = {"type": type(exc).__name__, "l2rules": isinstance(exc, l2rules.L2RulesError),
                         "message": str(exc)}
            catalog.engine.dispose()
            rows = len(frame) if hasattr(frame, "columns") else 0
            print(json.dumps({"name": name, "api": api, "refuse": refuse, "error": error, "before": before,
                              "after": counts(url), "rows": rows}), flush=True)


def _judge_frame(answer: dict) -> None:
    error, before, after = answer["error"], answer["before"], answer["after"]
    if error is not None:
        not_a_frame = answer["name"] in ("a_list", "a_dict") and error["type"] == "TypeError"  # Python's way
        expect(error["l2rules"] or not_a_frame,
               f"{error['type']} raised, not an L2RulesError: {error['message'][:300]}")
        expect("\n" not in error["message"].strip() and len(error["message"]) < 400,
               f"not one short line: {error['message'][:400]!r}")
        expect(after == before, f"rows changed by a refusal: {before} -> {after}")
        return
    expect(not answer["refuse"], "accepted, where an L2RulesError was due")
    stored = after["exposure"] - before["exposure"]
    wanted = answer["rows"] if answer["api"] == "load" else 0
    expect(stored == wanted, f"{stored} exposures stored, expected {wanted}")


def cat_dataframes(ctx: Context) -> None:
    for backend in ctx.backends:
        url = ctx.fresh(backend)
        try:
            names = ctx.sample(list(_frames()), 8)
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--dataframe-worker", url, *names],
                                  capture_output=True, text=True, timeout=600)
            answers = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
            ctx.check("dataframes", f"{short(backend)}/worker", expect, proc.returncode == 0 and answers,
                      f"the worker failed: exit {proc.returncode}: {proc.stderr[-1500:]}")
            for answer in answers:
                ctx.check("dataframes", f"{short(backend)}/{answer['api']}/{answer['name']}", _judge_frame, answer)
            integrity(url)
        finally:
            ctx.dbs.drop(url)


# ===================================================================================================
# crash
# ===================================================================================================

class AsnScenario(drills.Scenario):
    """``asn POOL -p DIR`` killed: every association file left in DIR is whole (all or nothing, per file)."""

    def __init__(self, backend: str, pool: Path, rows: int, outdir: Path):
        super().__init__("asn", backend, pool, rows)
        self.outdir, self.expected = outdir, None

    def database(self, dbs):
        shutil.rmtree(self.outdir, ignore_errors=True)
        return dbs.migrated(self.backend)

    def command(self) -> list[str]:
        return ["asn", str(self.pool), "-p", str(self.outdir)]

    def rerun(self) -> list[str]:
        return self.command()

    def _whole(self, leftovers_allowed: bool = False) -> int:
        files = list(self.outdir.glob("*.json")) if self.outdir.is_dir() else []
        torn = []
        for path in files:
            try:
                json.loads(path.read_text())
            except ValueError:
                torn.append(f"{path.name} ({path.stat().st_size} bytes)")
        if torn:
            raise drills.DrillFailure(f"{len(torn)} truncated association file(s): {', '.join(torn[:3])}")
        leftovers = [p.name for p in self.outdir.iterdir() if not p.name.endswith(".json")
                     and not (leftovers_allowed and p.name.startswith(".") and p.name.endswith(".tmp"))] \
            if self.outdir.is_dir() else []
        if leftovers:
            raise drills.DrillFailure(f"files left that are not associations: {leftovers[:3]}")
        return len(files)

    def outcome(self, url: str) -> str:
        # (right after a kill -9 a hidden temporary file may be left: no process is left to remove it; it
        # is not an association, and the next write into the directory removes it, which the rerun checks)
        drills.integrity(url)
        return f"{self._whole(leftovers_allowed=True)} whole files"

    def after_rerun(self, url: str) -> None:
        n = self._whole()
        if self.expected is None:  # the first whole command tells how many there are
            self.expected = n
        if n != self.expected or n == 0:
            raise drills.DrillFailure(f"{n} association files after the rerun, expected {self.expected}")


class RevisionScenario(drills.Scenario):
    """``rules revision`` killed, in a checkout of its own: no new revision, or a whole one (it compiles, the
    same text as unkilled); the rerun leaves exactly one, and ``init`` applies it."""

    MESSAGE = ["-m", "fault suite change", "--date", "2030-01-01", "--ref", "faults"]

    def __init__(self, backend: str, checkout: Path):
        super().__init__("revision", backend, checkout, 0)
        self.name = f"rules-revision-{short(backend)}"
        self.checkout = checkout
        self.versions = checkout / "migrations" / "versions"
        self.original = {p.name for p in self.versions.glob("*.py")}
        self.seed = checkout / "seeds" / "level2b_rules.csv"
        self.pristine = self.seed.read_text()
        self.expected: str | None = None

    def database(self, dbs):
        for path in self.versions.glob("*.py"):
            if path.name not in self.original:
                path.unlink()
        lines = self.pristine.splitlines(keepends=True)
        lines[1] = lines[1].rstrip("\n") + " (fault suite)\n" if lines[1].count(",") else lines[1]
        self.seed.write_text("".join(lines))
        return dbs.migrated(self.backend)

    def command(self) -> list[str]:
        return ["rules", "revision", *self.MESSAGE]

    def rerun(self) -> list[str]:
        return self.command()

    def _new(self) -> list[Path]:
        return sorted(p for p in self.versions.glob("*.py") if p.name not in self.original)

    def outcome(self, url: str) -> str:
        new = self._new()
        if not new:
            return "no revision"
        if len(new) > 1:
            raise drills.DrillFailure(f"{len(new)} new revisions: {[p.name for p in new]}")
        text = new[0].read_text()
        try:
            compile(text, str(new[0]), "exec")
        except SyntaxError as exc:
            raise drills.DrillFailure(f"a torn revision file {new[0].name}: {exc}") from None
        if self.expected is None:
            self.expected = text
        if text != self.expected:
            raise drills.DrillFailure(f"{new[0].name} differs from the unkilled command's ({len(text)} characters)")
        return "whole revision"

    def after_rerun(self, url: str) -> None:
        if self.outcome(url) != "whole revision":
            raise drills.DrillFailure("no revision after the rerun")
        code, _, err = drills.finish(drills.cli(url, "init", cwd=self.checkout))
        if code != 0:
            raise drills.DrillFailure(f"init of the new revision: exit {code}: {err.strip()[-400:]}")


def _checkout(workdir: Path) -> Path:
    """A copy of the project's migrations, seeds and alembic.ini: `rules revision` writes there, not in the repo."""
    work = workdir / "checkout"
    for name in ("migrations", "seeds"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "alembic.ini", work / "alembic.ini")
    return work


def _drill(ctx: Context, scenario, dbs, delay: float | None, durations: dict) -> None:
    outcome, elapsed, _ = drills.drill(scenario, dbs, delay)
    if delay is None:
        durations[scenario.name] = elapsed
    if ctx.args.verbose:
        print(f"  {scenario.name}: {'unkilled' if delay is None else f'kill at {delay:.2f} s'}: {outcome}")


def _sigterm_run(ctx: Context, dbs, backend: str, pool: Path, delay: float) -> None:
    """SIGTERM of `run` once its run is recorded running (then ``delay`` more seconds at most): exit 143,
    one line, the run recorded failed; the next run does it all."""
    url = dbs.migrated(backend)
    try:
        proc = drills.cli(url, "run", str(pool), cwd=dbs.workdir)
        drills.wait_for(lambda: drills._query(url, "SELECT count(*) FROM run WHERE status = 'running'")[0][0] > 0,
                        "the run recorded running", proc)
        started = time.monotonic()
        while proc.poll() is None and time.monotonic() - started < delay:
            time.sleep(0.02)
        seen = drills.children(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code, out, err = drills.finish(proc, timeout=120)
        ran = Ran(["", "", "run", str(pool)], code, out, err, 0)
        if code != 0:  # (else it finished before the signal: the rest is checked all the same)
            one_line(ran, 143)
            statuses = [r[0] for r in drills._query(url, "SELECT status FROM run")]
            expect(statuses == ["failed"], f"runs recorded {statuses}, expected ['failed']", ran)
        expect(drills.gone_within(seen) == [], "processes left after SIGTERM")
        integrity(url)
        drills.load_outcome(url, pool.name, ctx.crash_rows)
        ok(l2(url, "run", str(pool), cwd=dbs.workdir))
        drills.assert_loaded_once(url, pool.name, ctx.crash_rows)
        drills.assert_items_once(url)
    finally:
        dbs.drop(url)


def cat_crash(ctx: Context) -> None:
    rows = 4000 if ctx.bounded else 60000
    ctx.crash_rows = rows
    kills = 1 if ctx.bounded else 5
    crashdir = ctx.workdir / "crash"
    crashdir.mkdir()
    pool = drills.synthetic_pool(crashdir, rows)
    dbs = Databases(crashdir, "postgresql" in ctx.backends)
    checkout = _checkout(ctx.workdir)
    revision_dbs = Databases(checkout, "postgresql" in ctx.backends)
    try:
        for backend in ctx.backends:
            scenarios = [(drills.Scenario(kind, backend, pool, rows), dbs) for kind in drills.KINDS]
            scenarios.append((AsnScenario(backend, pool, rows, crashdir / f"asn_{short(backend)}"), dbs))
            scenarios.append((RevisionScenario(backend, checkout), revision_dbs))
            if ctx.bounded and backend != "sqlite":  # bounded: every command on SQLite, three on PostgreSQL
                scenarios = [x for x in scenarios if x[0].kind in ("load-bulk", "run", "init")]
            for scenario, where in scenarios:
                durations: dict[str, float] = {scenario.name: 1.5}
                # Unkilled first, to time the command (bounded: a kill in its first 1.5 s, the rerun the
                # whole command: no unkilled run of its own).
                if not ctx.bounded and not ctx.check("crash", f"{scenario.name}/unkilled", _drill, ctx, scenario,
                                                     where, None, durations):
                    continue
                for i in range(kills):
                    delay = ctx.rng.uniform(0.05, durations[scenario.name] * 1.1)
                    ctx.check("crash", f"{scenario.name}/kill-{i + 1}", _drill, ctx, scenario, where, delay,
                              durations)
            for i in range(1 if ctx.bounded else 3):
                ctx.check("crash", f"run-sigterm-{short(backend)}/{i + 1}", _sigterm_run, ctx, dbs, backend, pool,
                          ctx.rng.uniform(0.0, 1.0))
    finally:
        dbs.cleanup()
        revision_dbs.cleanup()


# ===================================================================================================
# concurrency
# ===================================================================================================

def _spawn(url: str, *args: str, cwd: Path | None = None) -> subprocess.Popen:
    return drills.cli(url, *args, cwd=cwd)


def _finish_all(procs: list[subprocess.Popen], timeout: float = 600) -> list[Ran]:
    return [Ran(["", "", *p.args[4:]], *drills.finish(p, timeout), 0) for p in procs]


def _first_use_loads(ctx: Context, backend: str, pools: list[Path]) -> None:
    """Loads at once into a catalog not made yet: SQLite makes it on first use (each load its pool);
    PostgreSQL wants `l2rules init` first (each load says so, one line, and nothing is made)."""
    url = ctx.empty(backend)
    try:
        results = _finish_all([_spawn(url, "load", str(p), cwd=ctx.workdir) for p in pools])
        if backend != "sqlite":
            for ran in results:
                one_line(ran, 3, "init")
            expect(_tables(url) == set(), f"tables made: {sorted(_tables(url))[:5]}")
            return
        for ran in results:
            ok(ran)
        integrity(url)
        names = {r[0] for r in drills._query(url, "SELECT name FROM pool WHERE n_exposures > 0")}
        expect(names == {p.name for p in pools}, f"pools in the catalog: {sorted(names)}")
        (n, distinct), = drills._query(url, "SELECT count(*), count(DISTINCT stem) FROM exposure")
        expect(n == distinct, f"{n} exposures, {distinct} distinct")
    finally:
        ctx.dbs.drop(url)


def _first_use_inits(ctx: Context, backend: str, n: int) -> None:
    url = ctx.empty(backend)
    try:
        results = _finish_all([_spawn(url, "init") for _ in range(n)])
        for ran in results:
            ok(ran)
        expect(sum("(was empty)" in r.out for r in results) == 1, "not exactly one init found the catalog empty")
        expect(drills.init_outcome(url) == "head", "not at the head")
    finally:
        ctx.dbs.drop(url)


def _runs_at_once(ctx: Context, backend: str, pool: Path, n: int, wait: bool) -> None:
    url = ctx.dbs.migrated(backend)
    try:
        extra = ["--wait", "600"] if wait else []
        results = _finish_all([_spawn(url, "run", str(pool), *extra, cwd=ctx.workdir) for _ in range(n)])
        for ran in results:
            if wait or ran.code == 0:
                ok(ran)
            else:
                one_line(ran, 5)
        expect(any(r.code == 0 for r in results), "no run succeeded")
        drills.assert_items_once(url)
        (done,), = drills._query(url, "SELECT count(*) FROM run WHERE status <> 'running'")
        expect(done == sum(r.code == 0 for r in results), f"{done} runs recorded, "
               f"{sum(r.code == 0 for r in results)} succeeded")
    finally:
        ctx.dbs.drop(url)


READS = [["worklist", "--format", "csv"], ["runs"], ["report"], ["rules", "list"], ["unmatched"], ["db", "current"]]


def _reads_during_load(ctx: Context, backend: str, pool: Path, rows: int) -> None:
    url = ctx.dbs.migrated(backend)
    try:
        big = _spawn(url, "load", "--method", "rows", str(pool), cwd=ctx.workdir)
        drills.wait_for(lambda: drills.writing(url), "the load writing", big)
        small = _spawn(url, "load", str(SAMPLE), cwd=ctx.workdir)
        for args in READS:
            ran = l2(url, *args, timeout=120, cwd=ctx.workdir)
            ok(ran)
        load_big, load_small = _finish_all([big, small])
        ok(load_big)
        ok(load_small)
        integrity(url)
        (n, distinct), = drills._query(url, "SELECT count(*), count(DISTINCT stem) FROM exposure")
        expect(n == distinct == rows + N_ROWS, f"{n} exposures ({distinct} distinct), expected {rows + N_ROWS}")
    finally:
        ctx.dbs.drop(url)


def cat_concurrency(ctx: Context) -> None:
    condir = ctx.workdir / "concurrency"
    condir.mkdir()
    rows = 4000 if ctx.bounded else 30000
    pool = drills.synthetic_pool(condir, rows)
    small = drills.synthetic_pool(condir, 300, seed=5)
    firsts = [REPO / "samples" / "pools" / n for n in ("jw00632_dups.csv", "jw87800_20180412T163456_pool.csv")]
    firsts += [SAMPLE, small]
    dbs = Databases(condir, "postgresql" in ctx.backends)
    saved, ctx.dbs = ctx.dbs, dbs
    try:
        for backend in ctx.backends:
            b = short(backend)
            ctx.check("concurrency", f"{b}/first-use-loads-{len(firsts)}", _first_use_loads, ctx, backend, firsts)
            for n in ((3,) if ctx.bounded else (2, 4, 8)):
                ctx.check("concurrency", f"{b}/first-use-inits-{n}", _first_use_inits, ctx, backend, n)
                ctx.check("concurrency", f"{b}/runs-at-once-{n}", _runs_at_once, ctx, backend, pool, n, False)
                if not ctx.bounded:
                    ctx.check("concurrency", f"{b}/runs-at-once-{n}-wait", _runs_at_once, ctx, backend, pool, n,
                              True)
            ctx.check("concurrency", f"{b}/reads-and-a-load-during-a-load", _reads_during_load, ctx, backend, pool,
                      rows)
    finally:
        ctx.dbs = saved
        dbs.cleanup()


# ===================================================================================================
# secrets
# ===================================================================================================

def _secret_urls(reachable: str) -> list[tuple[str, str, int]]:
    """(name, URL holding SECRET, the exit code due)."""
    s = SECRET
    return [
        ("reachable", reachable, 0),
        ("not_created", f"postgresql://postgres:{s}@127.0.0.1:5432/fault_suite_never_made", 3),
        ("port_refused", f"postgresql://u:{s}@127.0.0.1:1/x", 3),
        ("unknown_host", f"postgresql://u:{s}@host.invalid:5432/x", 3),
        ("no_colon_after_scheme", f"postgresql//u:{s}@127.0.0.1:5432/x", 3),
        ("one_slash", f"postgresql:/u:{s}@127.0.0.1:5432/x", 3),
        ("port_not_a_number", f"postgresql://u:{s}@127.0.0.1:port/x", 3),
        ("unknown_dialect", f"nosuchdb://u:{s}@127.0.0.1/x", 3),
        ("unknown_driver", f"postgresql+nodriver://u:{s}@127.0.0.1/x", 3),
        ("bad_percent_escape", f"postgresql://u:{s}%zz@127.0.0.1:1/x", 3),
        ("no_scheme", f"u:{s}@127.0.0.1:5432/x", 3),
        ("at_in_password", f"postgresql://u:{s}@x@127.0.0.1:1/x", 3),
    ]


SECRET_COMMANDS = [["runs"], ["init"], ["worklist"], ["load", str(SAMPLE)], ["db", "current"]]


def _secret_check(ctx: Context, url: str, code: int, command: list[str], verbosity: list[str], via_env: bool) -> None:
    env = {"L2RULES_DATABASE_URL": url} if via_env else None
    ran = l2(None if via_env else url, *verbosity, *command, env=env, timeout=60, cwd=ctx.workdir)
    for stream, text in (("standard error", ran.err), ("standard output", ran.out)):
        expect(SECRET not in text, f"the password printed on {stream}", ran)
    if code == 0 or verbosity:  # (-v and -vv may log more lines before the error's)
        exit_code(ran, code)
    else:
        one_line(ran, code)


def cat_secrets(ctx: Context) -> None:
    if "postgresql" not in ctx.backends:
        return
    reachable = ctx.dbs.migrated("postgresql")
    try:
        import sqlalchemy as sa

        with_password = sa.make_url(reachable).set(password=SECRET).render_as_string(hide_password=False)
        cases = [(name, url, code, command, verbosity, False)
                 for name, url, code in _secret_urls(with_password)
                 for command in SECRET_COMMANDS for verbosity in ([], ["-v"], ["-vv"])]
        cases += [(f"{name}_env", url, code, ["runs"], [], True) for name, url, code in _secret_urls(with_password)]
        for name, url, code, command, verbosity, env in ctx.sample(cases, 12):
            label = f"{name}/{' '.join(command[:1] if command[0] != 'db' else command)}" + \
                (f"/{verbosity[0]}" if verbosity else "")
            ctx.check("secrets", label, _secret_check, ctx, url, code, command, verbosity, env)
    finally:
        ctx.dbs.drop(reachable)


# ===================================================================================================
# migrations
# ===================================================================================================

def execute(url: str, *statements: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool) if url.startswith("sqlite") else drills.pg_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _with_data(ctx: Context, backend: str) -> str:
    url = ctx.fresh(backend)
    ok(l2(url, "load", str(SAMPLE), cwd=ctx.workdir))
    ok(l2(url, "run", cwd=ctx.workdir))
    return url


def _versions(url: str) -> list[str]:
    return sorted(r[0] for r in drills._query(url, "SELECT version_num FROM alembic_version"))


def _down_and_up(ctx: Context, backend: str, steps: str) -> None:
    url = _with_data(ctx, backend)
    try:
        before, version = counts(url), _versions(url)
        down = l2(url, "db", "downgrade", steps, cwd=ctx.workdir)
        if down.code == 0:
            integrity(url)
            (n,), = drills._query(url, "SELECT count(*) FROM exposure")
            expect(n == before["exposure"], f"{n} exposures after the downgrade, {before['exposure']} before", down)
        else:  # refused (it would drop data): one line, nothing changed
            one_line(down, down.code)
            expect(down.code in (2, 3), f"exit {down.code}", down)
            expect(_versions(url) == version, "the revision changed by a refused downgrade", down)
        ok(l2(url, "db", "upgrade", cwd=ctx.workdir))
        expect(_versions(url) == version, f"revision {_versions(url)} after the upgrade, expected {version}")
        unchanged(url, before)
        ok(l2(url, "run", str(OTHER), cwd=ctx.workdir))
        drills.assert_items_once(url)
    finally:
        ctx.dbs.drop(url)


BROKEN = {  # name -> statements that break a catalog at the head
    "two_versions": ["INSERT INTO alembic_version (version_num) VALUES ('0056')"],
    "empty_version": ["DELETE FROM alembic_version"],
    "unknown_version": ["UPDATE alembic_version SET version_num = '9999'"],
    "no_version_table": ["DROP TABLE alembic_version"],
    "missing_table": ["DROP TABLE exposure_candidate"],
}
BROKEN_COMMANDS = [["runs"], ["worklist"], ["run"], ["init"], ["load", str(SAMPLE)], ["report"]]


def _broken(ctx: Context, url: str, command: list[str], name: str) -> None:
    before = counts(url) if "exposure_candidate" in _tables(url) else None
    tables = _tables(url)
    ran = l2(url, *command, cwd=ctx.workdir)
    if name == "missing_table" and ran.code == 0 and command[0] in ("runs", "worklist", "report"):
        pass  # a reading command that needs not the missing table may answer
    elif name == "missing_table" and ran.code == 0 and command[0] == "init":
        expect("exposure_candidate" in _tables(url), "init says the catalog is at the head, the table still missing",
               ran)
        return  # repaired: the tables changed, as they should
    else:
        one_line(ran, 3)
    expect(_tables(url) == tables, "tables changed", ran)
    if before is not None:
        unchanged(url, before, ran)


def _tables(url: str) -> set[str]:
    sql = "SELECT name FROM sqlite_master WHERE type = 'table'" if url.startswith("sqlite") else \
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    return {r[0] for r in drills._query(url, sql)}


def cat_migrations(ctx: Context) -> None:
    for backend in ctx.backends:
        b = short(backend)
        for steps in (["-1"] if ctx.bounded else ["-1", "-3", "0050", "0030"]):
            ctx.check("migrations", f"{b}/with-data/downgrade-{steps}-upgrade", _down_and_up, ctx, backend, steps)
        for name, statements in BROKEN.items():
            url = _with_data(ctx, backend)
            try:
                execute(url, *statements)
                for command in ctx.sample(BROKEN_COMMANDS, 1):
                    ctx.check("migrations", f"{b}/broken/{name}/{command[0]}", _broken, ctx, url, command, name)
            finally:
                ctx.dbs.drop(url)


# ===================================================================================================
# resources
# ===================================================================================================

@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` for the block (root only)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path, leave: int = 0) -> None:
    """Fill the file system of ``directory`` but ``leave`` bytes."""
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    with open(directory / "filler", "wb", buffering=0) as fh:  # unbuffered: ENOSPC comes at the write
        with contextlib.suppress(OSError):
            fh.write(b"\0" * max(free - leave, 0))
            while not leave:  # to the last block
                fh.write(b"\0" * 4096)
                fh.flush()


def _whole_or_absent(path: Path, ran: Ran) -> None:
    if path.exists():
        expect(False, f"{path.name} left behind ({path.stat().st_size} bytes) after the failure", ran)
    leftovers = [p.name for p in path.parent.iterdir() if p.name != "filler"] if path.parent.is_dir() else []
    expect(not leftovers, f"files left behind: {leftovers[:3]}", ran)


def _all_json_whole(directory: Path, ran: Ran) -> None:
    for path in directory.rglob("*.json") if directory.is_dir() else []:
        try:
            json.loads(path.read_text())
        except ValueError:
            expect(False, f"a truncated association file {path.name} ({path.stat().st_size} bytes)", ran)


def _catalog_on_full_disk(ctx: Context, args: list[str], pool: Path) -> None:
    with tmpfs(ctx.workdir / "full_db", "8m") as mnt:
        source = drills.sqlite_path(ctx.fresh("sqlite"))
        shutil.copy(source, mnt / "catalog.db")
        url = f"sqlite:///{mnt / 'catalog.db'}"
        before = counts(url)
        fill(mnt, 48 << 10)
        ran = l2(url, *args, str(pool), cwd=ctx.workdir)
        one_line(ran, 3)
        (mnt / "filler").unlink()
        unchanged(url, before, ran)
        ctx.dbs.drop(f"sqlite:///{source}")


def _output_on_full_disk(ctx: Context, backend: str, what: str, pool: Path) -> None:
    url = ctx.fresh(backend)
    try:
        with tmpfs(ctx.workdir / f"full_out_{what}", "1m") as mnt:
            out = mnt / "out"
            if what != "asn":
                out.mkdir()
            fill(mnt)
            args = {"asn": ["asn", str(pool), "-p", str(out)],
                    "worklist": ["worklist", str(pool), "--output", str(out / "worklist.csv")],
                    "run": ["run", str(pool), "--output", str(out / "items.csv")],
                    "report": ["report", "--html", str(out / "report.html")]}[what]
            before = counts(url)
            ran = l2(url, *args, cwd=ctx.workdir)
            one_line(ran, 2)
            if what == "asn":
                _all_json_whole(out, ran)
            else:
                _whole_or_absent(Path(args[-1]), ran)
            if what != "run":
                unchanged(url, before, ran)
            integrity(url)
    finally:
        ctx.dbs.drop(url)


def _read_only_sqlite(ctx: Context, args: list[str], code: int) -> None:
    with tmpfs(ctx.workdir / "ro_db", "16m") as mnt:
        source = drills.sqlite_path(ctx.fresh("sqlite"))
        shutil.copy(source, mnt / "catalog.db")
        url = f"sqlite:///{mnt / 'catalog.db'}"
        before = counts(url)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        data = (mnt / "catalog.db").read_bytes()
        ran = l2(url, *args, cwd=ctx.workdir)
        if code == 0:
            ok(ran)
        else:
            one_line(ran, code)
        expect((mnt / "catalog.db").read_bytes() == data, "the read-only catalog changed", ran)
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        unchanged(url, before, ran)
        ctx.dbs.drop(f"sqlite:///{source}")


def _read_only_pg(ctx: Context, args: list[str], code: int) -> None:
    import sqlalchemy as sa

    url = ctx.fresh("postgresql")
    try:
        execute(url, f'ALTER DATABASE "{sa.make_url(url).database}" SET default_transaction_read_only = on')
        before = counts(url)
        ran = l2(url, *args, cwd=ctx.workdir)
        if code == 0:
            ok(ran)
        else:
            one_line(ran, code)
        unchanged(url, before, ran)
    finally:
        ctx.dbs.drop(url)


def _output_paths(ctx: Context, backend: str, what: str) -> None:
    """Outputs where the user cannot write, or under a path that cannot be made, or through a symlinked
    directory: exit 2, one line, nothing written anywhere."""
    url = ctx.fresh(backend)
    base = Path(tempfile.mkdtemp(prefix=f"out_{what}_", dir=ctx.workdir))
    outside = base / "outside"
    outside.mkdir()
    try:
        locked = base / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        a_file = base / "a_file"
        a_file.write_text("x")
        other = REPO / "samples" / "pools" / "pool_007_spec_miri.csv"
        if what == "symlinked_pool_dir":
            out = base / "asn"
            out.mkdir()
            for pool in (SAMPLE, other):
                (out / pool.stem).symlink_to(outside)
                (out / pool.name).symlink_to(outside)
            args, target = ["asn", str(SAMPLE), str(other), "-p", str(out)], None
        else:
            args, target = {
                "worklist_unwritable": (["worklist", str(SAMPLE), "--output", str(locked / "w.csv")], locked / "w.csv"),
                "asn_unwritable": (["asn", str(SAMPLE), "-p", str(locked / "asn")], locked / "asn"),
                "asn_under_a_file": (["asn", str(SAMPLE), "-p", str(a_file / "asn")], None),
                "report_unwritable": (["report", "--html", str(locked / "r.html")], locked / "r.html"),
                "run_unwritable": (["run", str(SAMPLE), "--output", str(locked / "items.csv")], locked / "items.csv"),
            }[what]
        ran = l2(url, *args, cwd=ctx.workdir, as_user=True)
        one_line(ran, 2)
        expect(not any(outside.iterdir()), f"written outside --output: {[p.name for p in outside.iterdir()][:3]}",
               ran)
        if target is not None:
            expect(not target.exists(), f"{target.name} written", ran)
    finally:
        ctx.dbs.drop(url)
        with contextlib.suppress(OSError):
            (base / "locked").chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


OUTPUT_PATHS = ["symlinked_pool_dir", "worklist_unwritable", "asn_unwritable", "asn_under_a_file",
                "report_unwritable", "run_unwritable"]


def cat_resources(ctx: Context) -> None:
    resdir = ctx.workdir / "resources"
    resdir.mkdir()
    pool = drills.synthetic_pool(resdir, 3000)
    for backend in ctx.backends:
        for what in ctx.sample(OUTPUT_PATHS, 3):
            ctx.check("resources", f"{short(backend)}/output/{what}", _output_paths, ctx, backend, what)
    if os.geteuid() != 0:
        print("resources: disk full and read-only mounts need root: skipped", flush=True)
        return
    if "sqlite" in ctx.backends:
        for name, args in ctx.sample([("load-rows", ["load", "--method", "rows"]),
                                      ("load-bulk", ["load", "--method", "bulk"]), ("run", ["run"])], 2):
            ctx.check("resources", f"sqlite/disk-full/catalog/{name}", _catalog_on_full_disk, ctx, args, pool)
        for args, code in ctx.sample([(["runs"], 0), (["worklist"], 0), (["report"], 0), (["rules", "list"], 0),
                                      (["load", str(SAMPLE)], 3), (["run", str(SAMPLE)], 3),
                                      # (at the head already: nothing to write, as `alembic upgrade head` says)
                                      (["init"], 0)], 3):
            ctx.check("resources", f"sqlite/read-only/{args[0]}", _read_only_sqlite, ctx, args, code)
    if "postgresql" in ctx.backends:
        for args, code in ctx.sample([(["runs"], 0), (["worklist"], 0), (["report"], 0),
                                      (["load", str(SAMPLE)], 3), (["run", str(SAMPLE)], 3)], 2):
            ctx.check("resources", f"pg/read-only/{args[0]}", _read_only_pg, ctx, args, code)
    for backend in ctx.backends:
        for what in ctx.sample(["asn", "worklist", "run", "report"], 2):
            ctx.check("resources", f"{short(backend)}/disk-full/output/{what}", _output_on_full_disk, ctx, backend,
                      what, pool)


# ===================================================================================================
# main
# ===================================================================================================

def summary(ctx: Context, categories: list[str]) -> int:
    print()
    print("known failing (KNOWN_FAILING, being fixed): " + (", ".join(KNOWN_FAILING) or "none"))
    failed_total = 0
    for category in categories:
        rs = [r for r in ctx.results if r.category == category]
        if not rs:
            continue
        fails = [r for r in rs if not r.passed]
        known = [r for r in fails if r.known]
        fixed = [r for r in rs if r.passed and r.known]
        extra = []
        if known:
            extra.append(f"{len(known)} known failing")
        if fixed:
            extra.append(f"{len(fixed)} fixed")
        print(f"{category}: {len(rs)} checks, {len(rs) - len(fails)} pass, {len(fails)} fail"
              + (f" ({', '.join(extra)})" if extra else ""))
        failed_total += len(fails)
    for r in ctx.results:
        if r.passed and r.known:
            print(f"fixed: {r.name} (in KNOWN_FAILING, passes now)")
    unexpected = [r.name for r in ctx.results if not r.passed and not r.known]
    n = len(ctx.results)
    known = sum(1 for r in ctx.results if not r.passed and r.known)
    print(f"total: {n} checks, {n - failed_total} pass, {failed_total} fail ({known} known failing, "
          f"{len(unexpected)} unexpected)")
    return 1 if failed_total else 0


RUNNERS: dict[str, Callable[[Context], None]] = {
    "badfiles": cat_badfiles, "dataframes": cat_dataframes, "crash": cat_crash, "concurrency": cat_concurrency,
    "secrets": cat_secrets, "migrations": cat_migrations, "resources": cat_resources,
}


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--dataframe-worker"]:  # the DataFrames' own process
        _dataframe_worker(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20261207, help="seed of the kill moments and samples")
    parser.add_argument("--categories", help=f"comma-separated, of {','.join(CATEGORIES)} (default: all)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite,postgresql (default: both)")
    parser.add_argument("--bounded", action="store_true", help="a few minutes: fewer kills, sampled files")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every check, passed or not")
    parser.add_argument("--workdir", type=Path, help="where files and SQLite catalogs go (default: a temporary one)")
    args = parser.parse_args(argv)

    _use_this_l2rules()
    categories = args.categories.split(",") if args.categories else list(CATEGORIES)
    unknown = [c for c in categories if c not in CATEGORIES]
    backends = args.backends.split(",")
    if unknown or not set(backends) <= {"sqlite", "postgresql"}:
        parser.error(f"unknown category or backend: {unknown or backends}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="l2rules-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(args, workdir, backends, random.Random(args.seed),
                  Databases(workdir, "postgresql" in backends, prepare=[["load", str(OTHER)]]))
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the scratch databases are dropped all the same
    try:
        if "postgresql" in backends:
            problem = drills._pg_available()
            if problem:
                ctx.check("setup", "postgresql reachable", expect, False,
                          f"PostgreSQL not reachable at {drills.PG_ADMIN}: {problem}")
                backends.remove("postgresql")
        for category in categories:
            if category in RUNNERS:
                t = time.monotonic()
                RUNNERS[category](ctx)
                print(f"[{category} done in {time.monotonic() - t:.0f} s]", flush=True)
    finally:
        ctx.dbs.cleanup()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    code = summary(ctx, ["setup", *categories])
    print(f"({time.monotonic() - started:.0f} s, seed {args.seed}, {'bounded' if args.bounded else 'full'})")
    return code


if __name__ == "__main__":
    sys.exit(main())
