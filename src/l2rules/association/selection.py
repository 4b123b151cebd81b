"""Which candidates an evaluation makes associations for: asn_generate's ``-i/--ids``, ``--all-candidates``
and operational (``--DMS``) mode, the last as the catalog in force says it worked.

By default (no ``-i``) the pipeline makes every candidate's associations and runs its discovery pass; with
``-i`` it makes only those candidates', without discovery; ``--all-candidates`` every candidate's, without
discovery; ``--discover`` every candidate's and the discovery pass's, then keeps only the discovered ones
that no candidate's association equals (for Level 2b: the parallel WFSS copies, ``a3001``). ``--DMS``
changed what a candidate is made of twice (``asn_parameter``):

* ``dms_observation_candidates = without_linked_background`` (jwst 1.18.0, JP-3116): an observation
  candidate's pool leaves out the exposures whose ASN_CANDIDATE text names a background candidate and whose
  BKGDTARG is false: no observation-only association of a science that has its background association;
* ``dms_candidate_ids = with_background_candidates`` (from jwst 1.18.1, JP-3116's duplication checks):
  with ``-i``, the background candidates of the exposures of the ids asked for are made too, so that the
  duplicate pruning sees them, and afterwards only the associations whose asn_id contains an id asked
  for are kept.

Both tests are the pipeline's own substring tests (``cid in row['asn_candidate']``, ``cid in asn_id``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .. import schema
from . import rules
from .columns import AssociationError
from .sql import contains

if TYPE_CHECKING:
    from .evaluation import Evaluation


@dataclass(frozen=True)
class Selection:
    """asn_generate's mode of operation. ``ids``: ``-i`` (None: every candidate); ``discover``: the discovery
    pass runs (never with ``-i``; not with ``--all-candidates``); ``dms``: ``--DMS``; ``candidates``: the
    candidates' own associations are written (all but ``--discover`` alone)."""

    ids: tuple[str, ...] | None = None
    discover: bool = True
    dms: bool = False
    candidates: bool = True

    def __post_init__(self) -> None:
        if self.ids is not None:  # (ids compared as the pool's lower-cased candidates; never discovery with -i)
            ids = tuple(str(cid).strip().lower() for cid in self.ids)
            if not ids or not all(ids):
                raise AssociationError("-i: no candidate id, or an empty one")
            object.__setattr__(self, "ids", ids)
            object.__setattr__(self, "discover", False)
        if not self.candidates and not self.discover:
            raise AssociationError("a selection that writes neither candidates' nor discovered associations")

    @classmethod
    def of(cls, ids: Iterable[str] | None = None, *, all_candidates: bool = False, discover: bool = False,
           dms: bool = False) -> Selection:
        """The selection of an asn_generate command line (``-i IDS``, ``--all-candidates``, ``--discover``,
        ``--DMS``)."""
        if sum((ids is not None, all_candidates, discover)) > 1:  # (the command line's own parser refuses it first)
            raise AssociationError("-i, --all-candidates and --discover exclude each other (as in asn_generate)")
        return cls(None if ids is None else tuple(ids), discover=ids is None and not all_candidates, dms=dms,
                   candidates=not discover)


DEFAULT = Selection()


def candidates(evaluation: Evaluation, candidate_members: sa.Select, exposures: sa.Table) -> sa.Select:
    """``candidate_members`` (exposure, candidate) as the selection makes the candidates."""
    selection, pairs = evaluation.selection, candidate_members.subquery("x_all")
    query = sa.select(pairs)
    if selection.ids is not None:
        chosen = list(selection.ids)
        if adds_background_candidates(evaluation):
            chosen_rows = sa.select(exposures.c.eid).where(sa.or_(*(contains(exposures.c.cand_raw, sa.literal(cid))
                                                                    for cid in chosen)))
            # (a candidate of the pool of those exposures: the same id in another pool is another candidate)
            background = (sa.select(pairs.c.pool_id, pairs.c.cand_id).where(pairs.c.cand_type == "background",
                                                                            pairs.c.eid.in_(chosen_rows)))
            query = query.where(sa.or_(pairs.c.cand_id.in_(chosen),
                                       sa.tuple_(pairs.c.pool_id, pairs.c.cand_id).in_(background)))
        else:
            query = query.where(pairs.c.cand_id.in_(chosen))
    if selection.dms and rules.parameter_value(evaluation.conn, "dms_observation_candidates") == \
            "without_linked_background":
        exposure = schema.exposure
        linked = (sa.select(exposures.c.eid).join(exposure, exposure.c.id == exposures.c.eid)
                  .where(contains(exposures.c.cand_raw, sa.literal("background")), exposure.c.bkgdtarg == sa.false()))
        query = query.where(sa.not_(sa.and_(contains(pairs.c.cand_type, sa.literal("observation")),
                                            pairs.c.eid.in_(linked))))
    return query


def adds_background_candidates(evaluation: Evaluation) -> bool:
    """``--DMS -i`` where the catalog in force says the background candidates of the ids' exposures are made
    too (``dms_candidate_ids``, from jwst 1.18.1)."""
    selection = evaluation.selection
    return selection.ids is not None and selection.dms and \
        rules.parameter_value(evaluation.conn, "dms_candidate_ids") == "with_background_candidates"


def written(evaluation: Evaluation, numbered: sa.Select) -> sa.Select:
    """The numbered associations the selection writes: with ``--DMS -i`` (where background candidates were
    added) those of the ids asked for, with ``--discover`` the discovered ones; each keeps its number, as the
    pipeline numbers before it drops the others."""
    every = numbered.subquery("numbered")
    if adds_background_candidates(evaluation):
        return sa.select(every).where(asked_for(evaluation, every.c.asn_id))
    if not evaluation.selection.candidates:
        return sa.select(every).where(every.c.prefix == "discover_")
    return numbered


def asked_for(evaluation: Evaluation, asn_id: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """The associations whose asn_id contains an id asked for: those ``--DMS -i`` writes, once the ones of
    the background candidates it added have served the duplicate checks."""
    return sa.or_(*(contains(asn_id, sa.literal(cid)) for cid in evaluation.selection.ids))
