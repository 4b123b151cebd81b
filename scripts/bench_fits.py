#!/usr/bin/env python3
"""Benchmark: an inventory from N header-only FITS files (default 10,000), read and loaded into SQLite.

Each file is a PrimaryHDU whose header holds a row of samples/pools/pool_018_all_exptypes.csv
(about 50 keywords), with a FILENAME of its own. Prints one line per stage, in seconds:

    .venv/bin/python scripts/bench_fits.py [--files 10000] [--workdir /tmp/l2rules-bench-fits]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

from astropy.io import fits

import l2rules
from l2rules.inventory import fits as l2fits

REPO = Path(__file__).resolve().parent.parent
POOL = REPO / "samples" / "pools" / "pool_018_all_exptypes.csv"


def rows() -> list[dict[str, str]]:
    with open(POOL) as fh:
        lines = [line for line in fh if not line.startswith("#")]
    reader = csv.reader(lines, delimiter="|")
    header = [h.upper() for h in next(reader)]
    out = []
    for row in reader:
        cards = {k: v for k, v in zip(header, row) if len(k) <= 8 and v.lower() != "null"}
        if cards.get("EXP_TYPE", "").lower() not in ("", "exp_type"):
            out.append(cards)
    return out


def make_files(directory: Path, count: int) -> None:
    templates = rows()
    directory.mkdir(parents=True)
    for i in range(count):
        hdu = fits.PrimaryHDU()
        for k, v in templates[i % len(templates)].items():
            hdu.header[k] = v
        hdu.header["FILENAME"] = f"jw{90000 + i // 1000:05d}001001_02101_{i % 1000 + 1:05d}_nrca1_uncal.fits"
        hdu.header["OBSERVTN"] = "001"
        hdu.writeto(directory / hdu.header["FILENAME"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="l2rules-bench-fits-"))
    directory = workdir / "fits"
    if directory.exists():
        shutil.rmtree(directory)
    start = time.perf_counter()
    make_files(directory, args.files)
    print(f"write {args.files} header-only FITS files: {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    pool = l2fits.make_pool(directory)
    read = time.perf_counter() - start
    print(f"read their primary headers into pool rows ({len(pool.columns)} columns): {read:.2f} s "
          f"({read / args.files * 1e3:.3f} ms a file)")
    db = workdir / "catalog.db"
    db.unlink(missing_ok=True)
    l2rules.init(f"sqlite:///{db}")
    start = time.perf_counter()
    result = l2rules.load(f"sqlite:///{db}", directory, progress=False)
    print(f"l2rules.load(directory) into SQLite, headers read again: {time.perf_counter() - start:.2f} s "
          f"({result.inserted} new)")
    start = time.perf_counter()
    result = l2rules.load(f"sqlite:///{db}", directory, progress=False)
    print(f"the same again (a reload: {result.updated} updated, {result.changed} changed): "
          f"{time.perf_counter() - start:.2f} s")
    if not args.workdir:
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
