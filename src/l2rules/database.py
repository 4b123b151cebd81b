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
from typing import TYPE_CHECKING, TextIO

from sqlalchemy.engine import Engine

from . import association as association_api
from . import catalog as rules_catalog
from . import inventory, migrate
from .association.selection import DEFAULT, Selection
from .config import DB, describe, get_engine
from .points import At

# by its full name: the package's attribute `worklist` is the function, not the module
work_list = importlib.import_module("l2rules.worklist")

if TYPE_CHECKING:
    import pandas as pd

    from .inventory import fits


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
    def load(self, source: str | Path | pd.DataFrame | list[str | Path], *, name: str | None = None,
             skip_bad: bool = False, progress: bool | None = None, method: str = "auto",
             fits_options: fits.Options | None = None) -> inventory.LoadResult:
        """Load a pool file, CSV file, DataFrame or FITS files in one transaction (see ``l2rules.load``)."""
        return inventory.load(self.engine, source, name=name, skip_bad=skip_bad, progress=progress, method=method,
                              fits_options=fits_options)

    def exposures(self, pool: str | int | None = None) -> pd.DataFrame:
        """The loaded exposures (of one pool, by name or id; an unknown pool is an error)."""
        return inventory.exposures(self.engine, pool)

    def rejections(self) -> pd.DataFrame:
        """Rows that ``skip_bad`` loads refused, with the reason."""
        return inventory.rejections(self.engine)

    # -- the work list ------------------------------------------------------------------------
    def worklist(self, *, pools: Iterable[str | Path] | None = None, inventory: pd.DataFrame | None = None,
                 include_all: bool = False, at: At = None, skip_bad: bool = False, associations: bool = False,
                 source: str = "pipeline", store: bool = False) -> pd.DataFrame:
        """The Level 2b work list (see ``l2rules.worklist``): of every loaded exposure, or of ``pools``
        (files) or ``inventory`` (a DataFrame) without changing the catalog unless ``store``."""
        return work_list.worklist(self.engine, pools=pools, inventory=inventory, include_all=include_all, at=at,
                                  skip_bad=skip_bad, associations=associations, source=source, store=store)

    def write_worklist(self, output: str | Path | None = None, *, fmt: str = "csv",
                       pools: Iterable[str | Path] | None = None, include_all: bool = False, at: At = None,
                       skip_bad: bool = False, source: str = "pipeline", store: bool = False) -> int:
        """Write the work list to ``output`` (stdout when None) as CSV or Parquet; returns the number of rows."""
        return work_list.write_worklist(self.engine, output, fmt=fmt, pools=pools, include_all=include_all, at=at,
                                        skip_bad=skip_bad, source=source, store=store)

    def evaluate(self, pool_ids: Iterable[int] | None = None, *, at: At = None) -> list[int]:
        """Store the pipeline's answer (at point ``at``) for every pool whose answers are missing or behind."""
        return work_list.evaluate(self.engine, pool_ids, at=at)

    def unmatched(self) -> pd.DataFrame:
        """Loaded exposures whose EXP_TYPE the catalog does not know."""
        return work_list.unmatched(self.engine)

    def impact(self, from_point: At, to_point: At, *, pools: Iterable[str | Path] | None = None,
               source: str = "pipeline", store: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Exposures a rules change moves in or out of the work list, and counts per instrument."""
        return work_list.impact(self.engine, from_point, to_point, pools=pools, source=source, store=store)

    # -- associations -------------------------------------------------------------------------
    def associations(self, pool: str | int, *, at: At = None, conditions: bool = True,
                     selection: Selection = DEFAULT) -> list[association_api.Association]:
        """The Level 2b associations the pipeline makes of one loaded pool, by name or id (at point ``at``)."""
        return association_api.associations(self.engine, pool, at=at, conditions=conditions, selection=selection)

    def asn(self, pools: Iterable[str | Path], output: str | Path, *, skip_bad: bool = False, at: At = None,
            version_id: str | bool | None = None, progress: bool | None = None, store: bool = False,
            selection: Selection = DEFAULT, dry_run: bool = False,
            save_orphans: str | Path | None = None) -> association_api.WrittenFiles:
        """Write the pools' association files under ``output`` as asn_generate does; returns the files
        (see ``l2rules.association.asn``)."""
        return association_api.asn(self.engine, pools, output, skip_bad=skip_bad, at=at, version_id=version_id,
                                   progress=progress, store=store, selection=selection, dry_run=dry_run,
                                   save_orphans=save_orphans)

    def explain(self, filename: str, pool: str | int | None = None, *, at: At = None,
                store: bool = False) -> pd.DataFrame:
        """Why an exposure is or is not the science of a Level 2b association (at point ``at``); ``pool``
        a loaded pool's name or id, or a pool file."""
        return association_api.explain(self.engine, filename, pool, at=at, store=store)

    # -- runs and reporting -------------------------------------------------------------------
    def run(self, pools: Iterable[str | Path] | None = None, *, inventory_dir: str | Path | None = None,
            output: str | Path | None = None, output_format: str | None = None, skip_bad: bool = False,
            wait: float = 0.0, progress: bool | None = None, create: bool = False) -> dict:
        """One scheduled run (see ``l2rules.runs.run``); returns its record."""
        from . import runs  # when asked: `run` needs no pandas, `runs` and `items` do

        return runs.run(self.engine, pools, inventory_dir=inventory_dir, output=output, output_format=output_format,
                        skip_bad=skip_bad, wait=wait, progress=progress, create=create)

    def runs(self, last: int | None = None, status: str | None = None) -> pd.DataFrame:
        """The run record, newest first."""
        from . import runs  # when asked: `run` needs no pandas, `runs` and `items` do

        return runs.runs(self.engine, last, status)

    def items(self, run_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """The work items (of some runs)."""
        from . import runs  # when asked: `run` needs no pandas, `runs` and `items` do

        return runs.items(self.engine, run_ids)

    def report(self, *, html: str | Path | None = None, stream: TextIO | None = None) -> dict[str, pd.DataFrame]:
        """Print the summary (and write the HTML page with ``html=PATH``); returns its tables."""
        from . import report  # imports pandas and matplotlib: only when asked (the CLI starts without them)

        return report.report(self.engine, html=html, stream=stream)

    def view(self, name: str) -> pd.DataFrame:
        """Every row of a reporting view (``l2rules.schema.VIEW_COLUMNS`` names them), typed the same on
        SQLite and PostgreSQL; an unknown view is an error."""
        from . import report  # imports pandas: only when asked

        return report.view(self.engine, name)
