#!/usr/bin/env python3
"""Each pool's reference output at one jwst release, in one process: the shared oracle
(/work/shared/tools/jwst_oracle.py, or $JWST_ORACLE) run on every pool of a directory, jwst imported
once (a process per pool spent most of its time importing jwst).

Run it with the python of a side venv that has the release installed (never a dependency of l2rules):

    /tmp/jwst-envs/v311/bin/python scripts/jwst_release_outputs.py POOLS_DIR OUT_ROOT [--timeout 300]

writes OUT_ROOT/<jwst version>/NAME.json and NAME.per_exposure.csv (what the oracle writes), the
environment.txt that release_fixtures_make.sh writes, and NAME.error.txt (the traceback's end) for a pool
that raises or runs past --timeout seconds. Releases before 1.9.1 get `Main.cli` as
jwst_oracle_compat.py gives it.
"""

from __future__ import annotations

import argparse
import io
import os
import runpy
import signal
import sys
import time
import traceback
from contextlib import redirect_stdout
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ORACLE = os.environ.get("JWST_ORACLE", "/work/shared/tools/jwst_oracle.py")
PACKAGES = ["jwst", "numpy", "astropy", "scipy", "stdatamodels", "stcal", "stpipe", "asdf", "gwcs", "crds"]


class TimedOut(Exception):
    pass


def _alarm(signum, frame):
    raise TimedOut()


def environment(pip_line: str) -> str:
    lines = [f"python {sys.version.split()[0]}"]
    for name in PACKAGES:
        try:
            lines.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            lines.append(f"{name} -")
    return "\n".join([*lines, f"pip install: {pip_line}"]) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pools", type=Path)
    ap.add_argument("out_root", type=Path)
    ap.add_argument("--timeout", type=int, default=300, help="seconds per pool (default 300)")
    ap.add_argument("--only", nargs="*", help="only these pools (names without .csv)")
    a = ap.parse_args()
    import jwst
    from jwst.associations.main import Main

    if not hasattr(Main, "cli"):  # before 1.9.1 (JP-3037): Main(args) generates and keeps .associations
        Main.cli = classmethod(lambda cls, args=None, pool=None: cls(args, pool=pool))
    out = a.out_root / jwst.__version__
    out.mkdir(parents=True, exist_ok=True)
    (out / "environment.txt").write_text(environment(os.environ.get("PIP_LINE", "?")))
    signal.signal(signal.SIGALRM, _alarm)
    failed = []
    for pool in sorted(a.pools.glob("*.csv")):
        name = pool.stem
        if a.only and name not in a.only:
            continue
        error = out / f"{name}.error.txt"
        error.unlink(missing_ok=True)
        start = time.monotonic()
        sys.argv = [ORACLE, str(pool), str(out / f"{name}.json"),
                    "--per-exposure", str(out / f"{name}.per_exposure.csv")]
        signal.alarm(a.timeout)
        try:
            with redirect_stdout(io.StringIO()):
                runpy.run_path(ORACLE, run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (0, None):
                error.write_text(f"exit {exc.code}\n")
        except TimedOut:
            error.write_text(f"timed out after {a.timeout} s\n")
        except Exception:
            error.write_text("".join(traceback.format_exc().splitlines(keepends=True)[-30:]))
        finally:
            signal.alarm(0)
        if error.exists():
            for made in (out / f"{name}.json", out / f"{name}.per_exposure.csv"):
                made.unlink(missing_ok=True)
            failed.append(name)
        print(f"{jwst.__version__} {name}: {'FAILED' if error.exists() else 'ok'} ({time.monotonic() - start:.1f} s)",
              flush=True)
    print(f"{jwst.__version__}: {len(failed)} failed" + (f": {' '.join(failed)}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
