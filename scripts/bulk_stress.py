#!/usr/bin/env python3
"""Stress the SQLite bulk path's writer process: many loads in a row, counting aborts.

Each load starts ``python -m l2rules.inventory.columnar`` (the writer process) on a fresh catalog with
one of the cases below: files it declines at the first block, files it declines blocks
into the file (while the next blocks are being parsed), a file the database refuses
mid-load, and files it loads. Every writer must exit 0 with its one-line answer; an
abort (a negative exit code, ``terminate called ...``) or any other failure is counted
and printed. ``--busy N`` keeps N CPU-bound processes running beside it, the conditions
under which the writer used to abort at exit (see ``l2rules.inventory.columnar.read._Source.batches``).

    python scripts/bulk_stress.py --loads 200 --busy 2
    python scripts/bulk_stress.py --loads 20 --db postgresql://postgres@127.0.0.1:5432/test

Exits 1 when any load failed in a way it should not have.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "src"))

import sqlalchemy as sa  # noqa: E402

from l2rules.config import L2RulesError, get_engine  # noqa: E402
from l2rules.inventory import columnar  # noqa: E402
from l2rules.migrate import upgrade  # noqa: E402

HEADER = "FILENAME|EXP_TYPE|ASN_CANDIDATE\n"


def row(i: int, exp_type: str = "NRC_IMAGE") -> str:
    return f"jw{i:08d}_uncal.fits|{exp_type}|[('o001', 'observation')]\n"


def rows(n: int, start: int = 0) -> str:
    return "".join(row(i) for i in range(start, start + n))


#: Rows enough for several of the reader's blocks.
MANY = 3 * columnar.BLOCK // len(row(0)) + 1

#: name -> (file text, what the bulk path should do: "loaded" or "declined")
CASES = {
    "loads": (HEADER + rows(200), "loaded"),
    "loads several blocks": (HEADER + rows(MANY), "loaded"),
    "crlf": ((HEADER + rows(5)).replace("\n", "\r\n"), "loaded"),
    "byte-order mark and trailing delimiters": ("\ufeff" + (HEADER + rows(5)).replace("\n", "|\n"), "loaded"),
    # declined by the converter, right after the reader parsed the block (aborted 4 runs in 20
    # while pyarrow parsed with threads of its own)
    "empty exp_type": (HEADER + rows(5) + "jw_x_uncal.fits||\n", "declined"),
    "not ascii": (HEADER + rows(5) + "jw_x_uncal.fits|NRC_IMAGE|é\n", "declined"),
    "too few fields": (HEADER + rows(5) + "jw_x_uncal.fits|NRC_IMAGE\n", "declined"),
    "header only": (HEADER, "declined"),
    "bad candidate": (HEADER + rows(5) + "jw_x_uncal.fits|NRC_IMAGE|not a list\n", "declined"),
    "lone carriage return blocks into the file": (
        HEADER + rows(MANY) + "jw_x_uncal.fits|NRC_IMAGE|\r\r\n" + rows(MANY, MANY), "declined"),
    "too few fields blocks into the file": (HEADER + rows(MANY) + "jw_x_uncal.fits|NRC_IMAGE\n" + rows(MANY, MANY),
                                            "declined"),
    # the database refuses the batch that repeats a stem, after earlier batches were written
    "repeated exposure blocks into the file": (HEADER + rows(MANY) + rows(MANY, 0), "declined"),
}


def burn(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def migrated_template(base: str, workdir: Path) -> str:
    """A migrated catalog that each load's fresh one is copied from (a migration per load is slow)."""
    url = fresh_catalog(base, workdir)
    upgrade(url)
    get_engine(url).dispose()
    return url


def fresh_catalog(base: str, workdir: Path, template: str | None = None) -> str:
    if base.startswith("sqlite"):
        path = workdir / f"{uuid.uuid4().hex}.db"
        if template:
            shutil.copyfile(sa.make_url(template).database, path)
        return f"sqlite:///{path}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"l2rules_stress_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        like = f' TEMPLATE "{sa.make_url(template).database}"' if template else ""
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{like}'))
    admin.dispose()
    return sa.make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_catalog(url: str, base: str) -> None:
    get_engine(url).dispose()
    if not base.startswith("sqlite"):
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}"'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=200, help="bulk loads in all (default 200)")
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside it (default 2)")
    parser.add_argument("--db", default="sqlite", help="'sqlite' (a fresh file per load) or a PostgreSQL URL")
    args = parser.parse_args()

    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=burn, args=(stop,), daemon=True) for _ in range(args.busy)]
    for process in burners:
        process.start()
    outcomes: Counter = Counter()
    failures: list[str] = []
    names = sorted(CASES)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            files = {}
            for k, name in enumerate(names):
                files[name] = workdir / f"case{k}.csv"
                files[name].write_bytes(CASES[name][0].encode("utf-8"))
            template = migrated_template(args.db, workdir)
            for i in range(args.loads):
                name = names[i % len(names)]
                expected = CASES[name][1]
                url = fresh_catalog(args.db, workdir, template)
                try:
                    columnar.load_file(get_engine(url), files[name], "stress", progress=False, force=True)
                    got = "loaded"
                except columnar.NotBulk:
                    got = "declined"
                except L2RulesError as exc:  # the writer process failed: an abort shows here
                    got = "failed"
                    failures.append(f"load {i + 1} ({name}): {exc}")
                finally:
                    drop_catalog(url, args.db)
                outcomes[got] += 1
                if got != expected and got != "failed":
                    failures.append(f"load {i + 1} ({name}): {got}, expected {expected}")
            drop_catalog(template, args.db)
    finally:
        stop.set()
        for process in burners:
            process.join()
    seconds = time.perf_counter() - started
    aborts = sum(1 for f in failures if "exit -" in f)
    for line in failures:
        print(line)
    print(f"{args.loads} bulk loads on {args.db.split(':')[0]} in {seconds:.0f} s beside {args.busy} busy processes: "
          f"{outcomes['loaded']} loaded, {outcomes['declined']} declined, {outcomes['failed']} failed; "
          f"aborts: {aborts}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
