"""The evaluation of pools: its stages, in the order they run, each materialised in a temporary table.

The stages run over every pool asked for in one pass, the pool a column of their tables (``pool_id``): what
is per pool in the pipeline (candidate ids, associations, asn_ids, sequence numbers, duplicates) is keyed by
the pool too, so that the pools evaluated together give each the answers of its evaluation alone, and many
small pools cost what one pool of as many exposures does (the statements compiled and run once, issue 28).

Each stage module (``exposures``, ``science``, ``companions``, ``members``, ``pruning``) fills
the attributes of :class:`Evaluation` that name its results; later stages and ``explain`` read
them there.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import sqlalchemy as sa

from . import answers, companions, exposures, members, pruning, rules, science
from .selection import DEFAULT, Selection

log = logging.getLogger(__name__)


class Evaluation:
    """The stages of one evaluation (of one or more pools) on one connection; every temporary table is dropped
    on close."""

    def __init__(self, conn: sa.Connection, selection: Selection = DEFAULT):
        self.conn = conn
        #: Which candidates are made (asn_generate's -i, --all-candidates, --DMS; selection.Selection).
        self.selection = selection
        self._metadata = sa.MetaData()
        self._created: list[sa.Table] = []
        if conn.dialect.name == "postgresql":
            # the statements are small but their estimates are not: JIT compilation would cost more
            # than it saves (for this transaction only)
            conn.execute(sa.text("SET LOCAL jit = off"))
        #: The accessible columns the rules' conditions, and their companion keys, name (rules.named_columns).
        self.condition_columns: list[str] = []
        #: The value sets in force, by name, read once (rules.value_sets).
        self.value_sets: dict[str, list[str]] = {}
        #: The optical paths in force, by kind, read once (rules.optical_paths).
        self.optical_paths: dict[str, list] = {}
        #: Per (rule, subject): its conditions as one expression over ``exposures`` (rules.compiled_conditions).
        self.compiled: dict[tuple[str, str], sa.ColumnElement[bool]] = {}
        #: The pools evaluated (``pools``: ``pool_id``).
        self.pools: sa.Table | None = None
        # 1. exposures.stage
        #: The pools' exposures: values normalised, derived columns (``xe``).
        self.exposures: sa.Table | None = None
        #: (exposure, candidate) for every candidate whose id occurs in the exposure's ASN_CANDIDATE (``x``).
        self.candidate_members: sa.Table | None = None
        # 2. science.stage
        #: (exposure, rule) where the rule's science conditions hold (``sci_rule``).
        self.science_rules: sa.Table | None = None
        #: (exposure, candidate, rule): the science of each candidate and rule (``sci``).
        self.science: sa.Table | None = None
        # 3. companions.stage
        #: (exposure, candidate, rule, kind): companions eligible by their own conditions (``cpool``).
        self.eligible_companions: sa.Table | None = None
        #: (science, candidate, rule, kind, companion) matched on the grouping keys (``matched``).
        self.matched: sa.Table | None = None
        #: The matched companions attached, nod overlaps left out (``pairs``).
        self.pairs: sa.Table | None = None
        # 4. members.stage
        #: The associations made: WFSS ones have a direct image (``asn0``).
        self.associations: sa.Table | None = None
        #: Their members: the science and its companions (``members0``).
        self.all_members: sa.Table | None = None
        #: The imprints the pipeline prunes (``imprint_drop``).
        self.imprint_drops: sa.Table | None = None
        #: The members without them (``mem0``).
        self.members: sa.Table | None = None
        #: The associations the candidate policy keeps, with what names and orders them (``asn1``).
        self.kept: sa.Table | None = None
        #: Those and the discovery pass's copies, each with its asn_id (``asn2``).
        self.with_copies: sa.Table | None = None
        #: Their members with the names the pipeline gives them (``members``).
        self.named_members: sa.Table | None = None
        # 5. pruning.stage
        #: Members per association (``counts``).
        self.member_counts: sa.Table | None = None
        #: Without duplicates of identical member lists (``asn3``).
        self.deduplicated: sa.Table | None = None
        #: Without the smaller associations of a product (``asn4``): the associations made.
        self.pruned: sa.Table | None = None
        #: Those with their sequence numbers (``asn5``).
        self.sequenced: sa.Table | None = None
        # 6. answers.stage (only where asked for: the work list and the stored answers)
        #: Per exposure that is a member of an association: its answer (``answers``).
        self.answers: sa.Table | None = None

    def stage(self, select: sa.Select | sa.CompoundSelect, name: str, *indexes: tuple[str, ...]) -> sa.Table:
        """``select`` materialised in the temporary table ``asn_tmp_<name>``, with an index on each tuple of
        column names in ``indexes`` (what later stages join it on)."""
        columns = [sa.Column(column.name, sa.String if isinstance(column.type, sa.types.NullType) else column.type)
                   for column in select.selected_columns]
        table = sa.Table(f"asn_tmp_{name}", self._metadata, *columns, prefixes=["TEMPORARY"])
        self.fill(table, select, indexes)
        return table

    def fill(self, table: sa.Table, select, indexes: tuple[tuple[str, ...], ...] = ()) -> None:
        """Create the temporary ``table``, fill it with ``select``, then index it (indexes built after the
        insert cost less than ones kept up row by row)."""
        started = time.perf_counter()
        table.create(self.conn)
        rows = self.conn.execute(table.insert().from_select([column.name for column in table.columns], select)
                                 .execution_options(preserve_rowcount=True)).rowcount
        for number, names in enumerate(indexes):
            sa.Index(f"{table.name}_i{number}", *(table.c[name] for name in names)).create(self.conn)
        if self.conn.dialect.name == "postgresql":
            # temporary tables get no statistics by themselves; without them the planner guesses
            # one row and picks nested loops over thousands
            self.conn.execute(sa.text(f"ANALYZE {table.name}"))
        self._created.append(table)
        log.debug("%s: %d rows in %.2f s", table.name, rows, time.perf_counter() - started)

    def listed(self, name: str, rows: list[dict], *columns: sa.Column) -> sa.Table:
        """The temporary table ``asn_tmp_<name>`` of ``columns`` holding ``rows`` (one statement, whatever their
        number: the pools of an evaluation are joined with it, not written into the SQL as a list)."""
        table = sa.Table(f"asn_tmp_{name}", self._metadata, *columns, prefixes=["TEMPORARY"])
        table.create(self.conn)
        if rows:
            self.conn.execute(table.insert(), rows)
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(sa.text(f"ANALYZE {table.name}"))
        self._created.append(table)
        return table

    def stage_pools(self, pool_ids: list[int]) -> sa.Table:
        """``pools``: the pools the stages read (first of :meth:`run`)."""
        self.pools = self.listed("pools", [{"pool_id": pool_id} for pool_id in dict.fromkeys(pool_ids)],
                                 sa.Column("pool_id", sa.Integer, primary_key=True))
        return self.pools

    def run(self, pool_ids: list[int]) -> sa.Select:
        """Every stage for the pools (one pool: a list of one), in order, all of them in one pass; returns the
        final SELECT (one row per member, with its ``pool_id``)."""
        self.stage_pools(pool_ids)
        self.condition_columns = rules.named_columns(self.conn, rules.condition)
        # the rules read once and written into the statements as constants: they are small, the pool is not
        self.value_sets = rules.value_sets(self.conn)
        self.optical_paths = rules.optical_paths(self.conn)
        exposures.stage(self)
        self.compiled = rules.compiled_conditions(self.conn, self.exposures, self.value_sets, self.optical_paths)
        science.stage(self)
        companions.stage(self)
        members.stage(self)
        return pruning.stage(self)

    def answer(self) -> sa.Table:
        """After :meth:`run`: each member exposure's answer (``answers``, stage 6)."""
        return answers.stage(self)

    def close(self) -> None:
        for table in reversed(self._created):
            table.drop(self.conn)
        self._created = []


@contextmanager
def evaluating(conn: sa.Connection, when: dt.date | None, selection: Selection = DEFAULT) -> Iterator[Evaluation]:
    """An evaluation with the rules in force on day ``when`` (the head when None) staged; closed after."""
    evaluation = Evaluation(conn, selection)
    if conn.dialect.name == "sqlite":
        _drop_leftovers(conn)
    try:
        rules.stage(evaluation, when)
        yield evaluation
    except BaseException:
        # The connection may be unusable now (a failed PostgreSQL transaction, a statement cancelled by
        # SIGTERM, a connection SQLAlchemy discarded): a cleanup failing here would hide the error. The
        # rollback drops PostgreSQL's temporary tables; SQLite's are dropped by the next evaluation.
        with suppress(sa.exc.SQLAlchemyError):
            evaluation.close()
        raise
    evaluation.close()


def _drop_leftovers(conn: sa.Connection) -> None:
    """Drop the temporary tables an evaluation that failed left on this pooled SQLite connection.

    pysqlite opens a transaction only before the first INSERT: the tables created before it are
    committed at once, and the rollback of a failed evaluation brings back the ones it had dropped
    (PostgreSQL rolls their creation back with the rest).
    """
    names = conn.exec_driver_sql("SELECT name FROM sqlite_temp_master WHERE type = 'table' "
                                 "AND name LIKE 'asn^_tmp^_%' ESCAPE '^'").scalars().all()
    for name in names:
        conn.exec_driver_sql(f'DROP TABLE temp."{name}"')
