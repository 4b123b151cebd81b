"""The catalog database as one object whose methods are the verbs.

``Catalog(db)`` opens the database once (a URL, an Engine, or None for the configured
default, as every function of the library takes) and keeps its Engine; each method
calls the library function of the same name with it, so a session of analysis reads

    >>> from l2rules import Catalog
    >>> catalog = Catalog("sqlite:///l2rules.db")
    >>> catalog.load("samples/pools/pool_002_image_miri.csv")        # doctest: +SKIP
    >>> catalog.worklist().head()                                    # doctest: +SKIP

The module functions stay the library's reference (``l2rules.worklist(db, ...)``); this
class only binds ``db``, the way sqlite-utils' ``Database`` binds its connection.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from . import association as association_api
from . import catalog as rules_catalog
from . import inventory, migrate
from .config import DB, describe, get_engine
from .points import At

# by its full name: the package's attribute `worklist` is the function, not the module
work_list = importlib.import_module("l2rules.worklist")

if TYPE_CHECKING:
    import pandas as pd


class Catalog:
    """An l2rules catalog database: ``Catalog()`` is the configured default
    ($L2RULES_DATABASE_URL, else ``sqlite:///l2rules.db``)."""

    def __init__(self, db: DB = None) -> None:
        self.engine: Engine = get_engine(db)

    def __repr__(self) -> str:
        return f"Catalog({describe(self.engine)!r})"

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections (the Engine stays usable: it reconnects on the next call)."""
        self.engine.dispose()

    # -- the catalog itself ------------------------------------------------------------------
    def init(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Create the catalog or upgrade it to ``revision``; returns (revision before, after)."""
        return migrate.init(self.engine, revision)

    @property
    def revision(self) -> str | None:
        """The schema revision the database is at (None: not created)."""
        return migrate.current_revision(self.engine)

    # -- the rules ----------------------------------------------------------------------------
    def rules(self, *, at: At = None, exp_type: str | None = None, instrument: str | None = None) -> pd.DataFrame:
        """The published table's rules in force (now, or at point ``at``: a date, revision or release)."""
        return rules_catalog.rules(self.engine, at=at, exp_type=exp_type, instrument=instrument)

    def conditions(self, *, at: At = None, exp_type: str | None = None) -> pd.DataFrame:
        """The conditions of the rules in force."""
        return rules_catalog.conditions(self.engine, at=at, exp_type=exp_type)

    def table_rows(self, table: str, *, at: At = None) -> pd.DataFrame:
        """The rows of one rules table (``rule``, ``asn_rule``, ...) in force."""
        return rules_catalog.table_rows(self.engine, table, at=at)

    def history(self, exp_type: str | None = None, *, table: str = "rule") -> pd.DataFrame:
        """Every state of an EXP_TYPE's rules (or of a table's rows), with dates and references."""
        return rules_catalog.history(self.engine, exp_type, table=table)

    def versions(self) -> pd.DataFrame:
        """The catalog versions: revision, effective date, reference, summary."""
        return rules_catalog.versions(self.engine)

    def releases(self) -> pd.DataFrame:
        """The jwst pipeline releases the catalog can answer for."""
        return rules_catalog.releases(self.engine)

    def diff(self, from_point: At, to_point: At, tables: list[str] | None = None) -> pd.DataFrame:
        """Rows of every rules table added, removed and changed between two points."""
        return rules_catalog.diff_all(self.engine, from_point, to_point, tables)

    def check(self, seeds: str | Path | None = None) -> pd.DataFrame:
        """Rows where the database and the seed files disagree (empty: in step)."""
        return rules_catalog.check_all(self.engine, seeds)

    # -- inventories --------------------------------------------------------------------------
    def load(self, source: str | Path | pd.DataFrame | list[str | Path], **options: Any) -> inventory.LoadResult:
        """Load a pool file, CSV file, DataFrame or FITS files in one transaction (see ``l2rules.load``)."""
        return inventory.load(self.engine, source, **options)

    def exposures(self, pool: str | None = None) -> pd.DataFrame:
        """The loaded exposures (of one pool)."""
        return inventory.exposures(self.engine, pool)

    def rejections(self) -> pd.DataFrame:
        """Rows that ``skip_bad`` loads refused, with the reason."""
        return inventory.rejections(self.engine)

    # -- the work list ------------------------------------------------------------------------
    def worklist(self, **options: Any) -> pd.DataFrame:
        """The Level 2b work list (see ``l2rules.worklist`` for ``pools``, ``include_all``, points...)."""
        return work_list.worklist(self.engine, **options)

    def write_worklist(self, output: str | Path | None = None, **options: Any) -> int:
        """Write the work list to ``output`` (stdout when None); returns the number of work items."""
        return work_list.write_worklist(self.engine, output, **options)

    def evaluate(self, pool_ids: Iterable[int] | None = None) -> list[int]:
        """Store the pipeline's answer for every pool whose answers are missing or behind."""
        return work_list.evaluate(self.engine, pool_ids)

    def unmatched(self) -> pd.DataFrame:
        """Loaded exposures whose EXP_TYPE the catalog does not know."""
        return work_list.unmatched(self.engine)

    def impact(self, from_point: At, to_point: At, **options: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Exposures a rules change moves in or out of the work list, and counts per instrument."""
        return work_list.impact(self.engine, from_point, to_point, **options)

    # -- associations -------------------------------------------------------------------------
    def associations(self, pool: str | int, *, at: At = None,
                     conditions: bool = True) -> list[association_api.Association]:
        """The Level 2b associations the pipeline makes of one loaded pool (at point ``at``)."""
        return association_api.associations(self.engine, pool, at=at, conditions=conditions)

    def asn(self, pools: Iterable[str | Path], output: str | Path, **options: Any) -> association_api.WrittenFiles:
        """Load each pool and write its association files under ``output``; returns the files."""
        return association_api.asn(self.engine, pools, output, **options)

    def explain(self, filename: str, pool: str | None = None, *, at: At = None) -> pd.DataFrame:
        """Why an exposure is or is not the science of a Level 2b association (at point ``at``)."""
        return association_api.explain(self.engine, filename, pool, at=at)

    # -- runs and reporting -------------------------------------------------------------------
    def run(self, pools: Iterable[str | Path] | None = None, **options: Any) -> dict:
        """One scheduled run (see ``l2rules.runs.run``); returns its record."""
        from . import runs  # when asked: `run` needs no pandas, `runs` and `items` do

        return runs.run(self.engine, pools, **options)

    def runs(self, last: int | None = None, status: str | None = None) -> pd.DataFrame:
        """The run record, newest first."""
        from . import runs  # when asked: `run` needs no pandas, `runs` and `items` do

        return runs.runs(self.engine, last, status)

    def items(self, run_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """The work items (of some runs)."""
        from . import runs  # when asked: `run` needs no pandas, `runs` and `items` do

        return runs.items(self.engine, run_ids)

    def report(self, **options: Any) -> dict[str, pd.DataFrame]:
        """Print the summary (and write the HTML page with ``html=PATH``); returns its tables."""
        from . import report  # imports pandas and matplotlib: only when asked (the CLI starts without them)

        return report.report(self.engine, **options)
