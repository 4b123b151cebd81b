"""Faults on the files l2rules reads and writes (issues 32 and 33): output files all or nothing, never written
through a symbolic link at any depth under an --output; a file the system refuses (permissions, a directory,
a FIFO, no space left, a path that cannot be made) one line naming it, exit 2, on both backends; ``load
--method bulk`` declining exits 2; an option's value that starts with '-' one line naming the option."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from l2rules import outputs, schema
from l2rules.cli import EXIT_CODES, main
from l2rules.config import get_engine

from .conftest import POOLS, REPO
from .test_bulk import DECLINED

POOL = POOLS / "pool_002_image_miri.csv"
OTHER = POOLS / "pool_003_image_nircam.csv"
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "usage:" not in err, err
    return lines[0]


def _cli(*args: str, timeout: float = 120, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The CLI in a process of its own (standard input closed), as a user runs it."""
    return subprocess.run([*prefix, sys.executable, "-m", "l2rules", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, stdin=subprocess.DEVNULL)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


# --- 1. no write through a symbolic link, at any depth -------------------------------------------------

def test_asn_refuses_a_symlinked_pool_directory_inside_its_output(db, tmp_path, capsys):
    """The harness's case: with two pools each has a directory under --output; one planted as a link to
    elsewhere is refused, and nothing is written where it points."""
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.mkdir()
    (out / POOL.stem).symlink_to(victim)
    assert main(["--db", db, "asn", str(POOL), str(OTHER), "--output", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(out / POOL.stem) in line and "symbolic link" in line
    assert list(victim.iterdir()) == []
    (out / POOL.stem).unlink()
    assert main(["--db", db, "asn", str(POOL), str(OTHER), "--output", str(out)]) == 0
    assert len(list((out / POOL.stem).glob("*_asn.json"))) == 8 and list(victim.iterdir()) == []


def test_asn_refuses_its_output_directory_as_a_symbolic_link(db, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / "out").symlink_to(victim)
    assert main(["--db", db, "asn", str(POOL), "-p", str(tmp_path / "out")]) == 2
    assert "symbolic link" in _one_line(capsys.readouterr().err) and list(victim.iterdir()) == []
    # the parents of the directory are the user's path, followed as the system follows them
    assert main(["--db", db, "asn", str(POOL), "-p", str(tmp_path / "out" / "inside")]) == 0
    assert len(list((victim / "inside").glob("*_asn.json"))) == 8


def test_save_orphans_goes_through_no_link(db, tmp_path, capsys):
    out, victim = tmp_path / "out", tmp_path / "victim"
    (out / "tables").mkdir(parents=True)
    victim.mkdir()
    (out / "linked").symlink_to(victim)
    assert main(["--db", db, "asn", str(POOL), "-p", str(out), "--save-orphans", "linked/orphans.csv"]) == 2
    assert "symbolic link" in _one_line(capsys.readouterr().err) and list(victim.iterdir()) == []
    assert main(["--db", db, "asn", str(POOL), "-p", str(out), "--save-orphans", "../orphans.csv"]) == 2
    assert "--save-orphans" in _one_line(capsys.readouterr().err) and not (tmp_path / "orphans.csv").exists()
    assert main(["--db", db, "asn", str(POOL), "-p", str(out), "--save-orphans", "tables/orphans.csv"]) == 0
    assert (out / "tables" / "orphans.csv").read_text().count("\n") > 8


def test_output_directory_at_any_depth(tmp_path):
    """outputs.OutputDirectory, the one helper: each directory entered by descriptor, a link refused at every
    depth, a file name that is a link refused (never followed), an existing file replaced whole."""
    victim = tmp_path / "victim"
    victim.mkdir()
    with outputs.OutputDirectory(tmp_path / "a" / "b") as top:  # made with its parents
        deep = top.sub("c").sub("d")
        deep.write_bytes("x.json", b"{}")
        (tmp_path / "a" / "b" / "c" / "link").symlink_to(victim)
        with pytest.raises(outputs.PathError, match="symbolic link"):
            top.sub("c").sub("link")
        (tmp_path / "a" / "b" / "c" / "d" / "y.json").symlink_to(victim / "y.json")
        with pytest.raises(outputs.PathError, match="symbolic link"):
            deep.write_bytes("y.json", b"{}")
        with pytest.raises(outputs.PathError, match="not a directory"):
            deep.sub("x.json")
        (tmp_path / "a/b/c/d/x.json").chmod(0o600)
        assert deep.write_bytes("x.json", b'{"a": 1}') == str(tmp_path / "a" / "b" / "c" / "d" / "x.json")
        assert (tmp_path / "a/b/c/d/x.json").stat().st_mode & 0o777 == 0o600  # replaced, its permissions kept
    assert json.loads((tmp_path / "a/b/c/d/x.json").read_text()) == {"a": 1}
    assert list(victim.iterdir()) == [] and [p.name for p in (tmp_path / "a/b/c/d").iterdir()
                                          if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("command", ["worklist", "worklist-published", "run", "report", "rules", "pool"])
def test_every_output_file_refuses_a_symbolic_link(db, tmp_path, capsys, command):
    """Each writer that takes an output path writes through outputs.output_file: a link there is refused
    (exit 2, one line naming it) and what it points to is left as it was."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    suffix = {"report": ".html", "pool": ".csv"}.get(command, ".csv")
    link = tmp_path / f"link{suffix}"
    link.symlink_to(victim)
    argv = {"worklist": ["worklist", str(POOL), "--output", str(link)],
            "worklist-published": ["worklist", "--published", str(POOL), "--output", str(link)],
            "run": ["run", str(POOL), "--output", str(link)],
            "report": ["report", "--html", str(link)],
            "rules": ["rules", "list", "--output", str(link)],
            "pool": ["pool", str(tmp_path / "fits"), "--output", str(link)]}[command]
    if command == "pool":
        from .test_fits import fits_from_pool

        fits_from_pool(POOL.name, tmp_path / "fits")
    code = main(["--db", db, *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(link) in err.strip().splitlines()[-1] and "symbolic link" in err
    assert victim.read_text() == "precious" and link.is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --- 2. all or nothing -----------------------------------------------------------------------------

class _DiskFull:
    """``os.write`` that writes part of the bytes it is given, then fails as a full disk does."""

    def __init__(self, after: int):
        self.after, self.real = after, os.write

    def __call__(self, fd, data):
        if self.after <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.real(fd, bytes(data[:max(1, min(len(data), self.after) // 2)]))
        self.after -= written
        return written


def test_asn_on_a_full_disk_leaves_whole_files_only(db, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(["--db", db, "asn", str(POOL), "-p", str(out)]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(outputs.os, "write", _DiskFull(3000))  # a few files, then no space
    assert main(["--db", db, "asn", str(POOL), "-p", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "No space left on device" in line and str(out) in line and "nothing was written" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # each file whole: old or new, same bytes
    assert all(json.loads(text) for text in before.values())


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_worklist_output_on_a_full_disk_is_as_it_was(db, tmp_path, capsys, monkeypatch, fmt):
    target = tmp_path / f"work.{fmt}"
    target.write_bytes(b"the earlier list")
    real_open = open

    def full_disk(file, mode="r", *args, **kwargs):  # the temporary file's object: its writes fail
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, int):
            def fail(*_a, **_k):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            handle.write = fail
        return handle

    monkeypatch.setattr(outputs, "open", full_disk, raising=False)
    for published in ([], ["--published"]):
        assert main(["--db", db, "worklist", *published, str(POOL), "--output", str(target)]) == 2
        line = _one_line(capsys.readouterr().err)
        assert line.startswith(f"l2rules: error: {target}: No space left on device"), line
        assert target.read_bytes() == b"the earlier list"
        assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tmp") == []


def test_a_killed_asn_never_leaves_a_torn_file(tmp_path):
    """kill -9 of asn at moments spread over its writing: every *_asn.json left is whole JSON."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    pool = tmp_path / "big_pool.csv"
    lines = POOLS.joinpath("pool_018_all_exptypes.csv").read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    rows = lines[header + 1:]
    # many observations: the same rows under other observation numbers, so the files are many
    body = [row.replace("jw99009", f"jw{99000 + k:05d}") for k in range(8) for row in rows]
    pool.write_text("\n".join(lines[:header + 1] + body) + "\n")
    assert _cli("--db", db, "init").returncode == 0
    assert _cli("--db", db, "load", str(pool)).returncode == 0
    whole = _cli("--db", db, "asn", str(pool), "-p", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    count = len(list((tmp_path / "whole").glob("*_asn.json")))
    assert count > 20
    started = time.monotonic()
    done = _cli("--db", db, "asn", str(pool), "-p", str(tmp_path / "timing"))
    elapsed = time.monotonic() - started
    assert done.returncode == 0
    for k, fraction in enumerate((0.55, 0.7, 0.8, 0.9, 0.95)):
        out = tmp_path / f"killed{k}"
        child = subprocess.Popen([sys.executable, "-m", "l2rules", "--db", db, "asn", str(pool), "-p", str(out)],
                                 env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(elapsed * fraction)
        child.send_signal(signal.SIGKILL)
        child.wait()
        for path in out.glob("*_asn.json") if out.exists() else ():
            json.loads(path.read_text())  # whole, or not there
        leftovers = [p.name for p in out.iterdir()] if out.exists() else []
        assert all(name.endswith("_asn.json") or (name.startswith(".") and name.endswith(".tmp"))
                   for name in leftovers), leftovers


# --- 3. a file the system refuses: one line, exit 2 ---------------------------------------------------

def test_a_directory_or_a_fifo_as_a_pool_is_one_line(db, tmp_path):
    fifo = tmp_path / "pool.fifo"
    os.mkfifo(fifo)
    empty_dir = tmp_path / "a_directory"
    empty_dir.mkdir()
    for argv in (["load", str(fifo)], ["load", "--method", "bulk", str(fifo)], ["worklist", str(fifo)],
                 ["asn", str(fifo), "-p", str(tmp_path / "o")], ["run", str(fifo)],
                 ["load", str(empty_dir)], ["worklist", str(empty_dir)]):
        done = _cli("--db", db, *argv, timeout=60)  # (a FIFO opened would wait for a writer: never opened)
        assert done.returncode == 2, (argv, done.stderr)
        named = fifo if str(fifo) in argv else empty_dir
        assert str(named) in _one_line(done.stderr)
    assert "FIFO" in _one_line(_cli("--db", db, "load", str(fifo), timeout=60).stderr)
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.pool)).scalar_one() == 0


def _unprivileged() -> tuple[str, ...]:
    """A prefix that runs a command without the right to read or write what its permissions forbid: nothing as
    another user than root; as root (who bypasses permissions) setpriv dropping CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("root bypasses permissions and there is no setpriv to drop the capabilities")
    prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("setpriv cannot drop the capabilities here")
    return prefix


@pytest.mark.parametrize("argv", [["load"], ["load", "--method", "bulk"], ["load", "--method", "rows"],
                                  ["worklist"], ["asn", "-p", "{out}"], ["run"]], ids=" ".join)
def test_a_pool_that_cannot_be_read_is_one_line(db, tmp_path, argv):
    prefix = _unprivileged()
    secret = tmp_path / "secret.csv"
    shutil.copy(POOL, secret)
    secret.chmod(0)
    try:
        done = _cli("--db", db, *[a.replace("{out}", str(tmp_path / "o")) for a in argv], str(secret),
                    prefix=prefix)
    finally:
        secret.chmod(0o644)
    assert done.returncode == 2, done.stderr
    assert _one_line(done.stderr) == f"l2rules: error: {secret}: Permission denied"
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.pool)).scalar_one() == 0


def test_an_output_that_cannot_be_made_is_one_line(db, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for argv in (["worklist", str(POOL), "--output", str(a_file / "sub" / "work.csv")],
                 ["asn", str(POOL), "--output", str(a_file / "sub")],
                 ["asn", str(POOL), "--output", str(a_file)],
                 ["report", "--html", str(a_file / "r.html")],
                 ["worklist", str(POOL), "--format", "csv", "--output", str(tmp_path)]):
        code = main(["--db", db, *argv])
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        line = err.strip().splitlines()[-1]
        assert "Traceback" not in err and (str(a_file) in line or str(tmp_path) in line), line
    assert a_file.read_text() == "x"


def test_an_output_directory_that_cannot_be_written_is_one_line(db, tmp_path):
    prefix = _unprivileged()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        worklist = _cli("--db", db, "worklist", str(POOL), "--output", str(locked / "work.csv"), prefix=prefix)
        asn = _cli("--db", db, "asn", str(POOL), "-p", str(locked / "asn"), prefix=prefix)
    finally:
        locked.chmod(0o755)
    assert worklist.returncode == 2 and asn.returncode == 2, (worklist.stderr, asn.stderr)
    assert str(locked) in _one_line(worklist.stderr) and "Permission denied" in worklist.stderr
    assert str(locked) in _one_line(asn.stderr) and "Permission denied" in asn.stderr
    assert list(locked.iterdir()) == []


def _small_disk(path: Path, size: str = "128k") -> bool:
    path.mkdir()
    return os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                                capture_output=True).returncode == 0


def test_a_real_full_disk_is_one_line_and_nothing_half_written(db, tmp_path):
    disk = tmp_path / "disk"
    if not _small_disk(disk):
        pytest.skip("no small tmpfs can be mounted here")
    try:
        (disk / "filler").write_bytes(b"\0" * (128 * 1024 - 12 * 1024))  # a few blocks left
        worklist = _cli("--db", db, "worklist", "--all", str(POOLS / "pool_018_all_exptypes.csv"), "--format",
                        "json", "--output", str(disk / "work.json"))
        asn = _cli("--db", db, "asn", str(POOLS / "pool_018_all_exptypes.csv"), "-p", str(disk / "asn"))
        assert worklist.returncode == 2 and asn.returncode == 2, (worklist.stderr, asn.stderr)
        assert "No space left on device" in _one_line(worklist.stderr) and str(disk) in worklist.stderr
        assert "No space left on device" in _one_line(asn.stderr)
        assert not (disk / "work.json").exists()
        assert [p.name for p in disk.rglob("*.tmp")] == []
        for path in (disk / "asn").glob("*_asn.json"):
            json.loads(path.read_text())
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_cli_main_turns_any_oserror_on_a_path_into_one_line(monkeypatch, capsys):
    """The one place: an OSError naming a file that reaches cli.main is exit 2 and one line (outputs.path_error);
    one naming no file is a bug, raised."""
    from l2rules import cli

    def refuse(args):
        raise PermissionError(errno.EACCES, "Permission denied", "/some/where.csv")

    monkeypatch.setattr(cli, "unmatched", refuse)
    monkeypatch.setattr(cli, "build_parser", _parser_with(cli, refuse))
    assert main(["unmatched"]) == 2
    assert _one_line(capsys.readouterr().err) == "l2rules: error: /some/where.csv: Permission denied"

    def bug(args):
        raise OSError("no file named")

    monkeypatch.setattr(cli, "build_parser", _parser_with(cli, bug))
    with pytest.raises(OSError, match="no file named"):
        main(["unmatched"])


def _parser_with(cli, handler):
    real = cli.build_parser

    def build():
        parser = real()
        parser.set_defaults(handler=handler)
        for action in parser._subparsers._group_actions:
            for sub in action.choices.values():
                sub.set_defaults(handler=handler)
        return parser

    return build


def test_exit_code_two_says_files():
    assert "refuses" in EXIT_CODES[2][1] and "symbolic link" in EXIT_CODES[2][1]


# --- 4. load --method bulk declining exits 2 ----------------------------------------------------------

@pytest.mark.parametrize("case", sorted(DECLINED)[:3])
def test_bulk_declining_a_file_exits_two(db, tmp_path, capsys, case):
    path = tmp_path / "declined.csv"
    path.write_bytes(DECLINED[case][0].encode("utf-8"))
    assert main(["--db", db, "load", "--method", "bulk", str(path)]) == 2
    assert "the bulk path declines this file" in _one_line(capsys.readouterr().err)
    fits_dir = tmp_path / "fits"
    fits_dir.mkdir()
    assert main(["--db", db, "load", "--method", "bulk", str(fits_dir)]) == 2  # FITS input: declined too
    assert "declines" in _one_line(capsys.readouterr().err)
    assert main(["--db", db, "load", "--method", "bulk", "-"]) == 2  # standard input
    assert "declines" in _one_line(capsys.readouterr().err)


# --- 5. option-like values ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, option, value", [
    (["worklist", "--as-of", "-2024-01-01", str(POOL)], "--as-of", "-2024-01-01"),
    (["asn", str(POOL), "-p", "-out"], "-p", "-out"),
    (["run", str(POOL), "--output", "-items.csv"], "--output", "-items.csv"),
    (["--db", "-x", "runs"], "--db", "-x"),
    (["rules", "list", "--exp-type", "-MIR_IMAGE"], "--exp-type", "-MIR_IMAGE"),
    (["worklist", "--db", "sqlite:///x.db", str(POOL), "--db", "-y"], "--db", "-y"),
])
def test_a_value_that_looks_like_an_option_is_one_line(capsys, argv, option, value):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"l2rules: error: argument {option}") and "expected one argument" in line, line
    assert f"write {option}={value} for a value that starts with '-'" in line


def test_a_missing_value_is_one_line_and_other_errors_keep_their_usage(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["worklist", str(POOL), "--as-of"])
    assert stopped.value.code == 2
    assert _one_line(capsys.readouterr().err) == "l2rules: error: argument --as-of: expected one argument"
    with pytest.raises(SystemExit):
        main(["worklist", "--no-such-option"])
    assert "usage:" in capsys.readouterr().err


def test_the_temporary_files_a_killed_writer_left_are_removed_by_the_next(tmp_path):
    """kill -9 leaves a hidden ``.NAME.PID-N.tmp`` (no process is left to remove it); the next write into the
    directory removes those of processes no longer running, and never a live writer's."""
    import os

    from l2rules.outputs import OutputDirectory

    dead = next(pid for pid in range(4_000_000, 4_100_000) if not os.path.exists(f"/proc/{pid}"))
    stale = tmp_path / f".jw01000-o021_spec2_00110_asn.json.{dead}-3.tmp"
    live = tmp_path / f".jw01000-o021_spec2_00111_asn.json.{os.getpid()}-9.tmp"
    other = tmp_path / "notes.tmp"  # not l2rules' name: not its to remove
    for path in (stale, live, other):
        path.write_text("{")
    with OutputDirectory(tmp_path) as out:
        out.write_bytes("a_asn.json", b"{}")
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "a_asn.json").read_text() == "{}"
