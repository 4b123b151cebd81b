#!/usr/bin/env python3
"""Run the shared oracle (/work/shared/tools/jwst_oracle.py, or $JWST_ORACLE) on jwst releases older
than 1.9.1, whose association Main has no `Main.cli` classmethod yet (it came with JP-3037): there
`Main(args)` itself parses the arguments, generates, and keeps `.associations`, which is what `cli`
returns later.  Newer releases are left as they are.  Same arguments as the oracle.
"""
import os
import runpy
import sys

ORACLE = os.environ.get("JWST_ORACLE", "/work/shared/tools/jwst_oracle.py")
from jwst.associations.main import Main  # noqa: E402

if not hasattr(Main, "cli"):
    Main.cli = classmethod(lambda cls, args=None, pool=None: cls(args, pool=pool))
sys.argv = [ORACLE] + sys.argv[1:]
runpy.run_path(ORACLE, run_name="__main__")
