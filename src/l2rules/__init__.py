"""l2rules: a SQL-backed catalog of the JWST Level 2b processing rules and their work lists.

The library first; the ``l2rules`` command is a thin layer over these functions,
each of which takes ``db`` first (a URL, an Engine, or None for the configured default:
``l2rules.load(None, "pool.csv")``) and returns pandas DataFrames. ``Catalog(db)`` opens a database once and offers the
same verbs as methods.
"""

__version__ = "0.1.0"  # first: modules of the package read it as they load

from .catalog import check as check_rules
from .catalog import conditions, diff, history, read_seed, rules, versions
from .config import L2RulesError, database_url, get_engine
from .database import Catalog
from .inventory import LoadResult, exposures, load, rejections
from .migrate import upgrade as init
from .points import Point
from .worklist import impact, unmatched, worklist, write_worklist

__all__ = [
    "Catalog", "L2RulesError", "LoadResult", "Point", "check_rules", "conditions", "database_url", "diff", "exposures",
    "get_engine", "history", "impact", "init", "load", "read_seed", "rejections", "rules", "unmatched",
    "versions", "worklist", "write_worklist",
]
