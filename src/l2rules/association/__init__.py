"""Level 2b associations as the jwst pipeline builds them, evaluated in SQL.

The published table (``rule``) says which exposure types are processed; the
pipeline (jwst 3.0.0, ``asn_generate`` with ``rules_level2b``) applies more
conditions, all kept as data in the ``asn_*`` tables (migration 0009):

* ``asn_rule``: the pipeline's association rules, with the set of exposure
  types each accepts as science (``asn_value_set``);
* ``asn_condition``: predicates on pool columns, per rule and subject (the
  science, or a companion kind): a common part (alt 0) and alternatives;
* ``asn_companion`` / ``asn_companion_key``: the companions each rule attaches
  (backgrounds, imprints, nods, TA confirms, WFSS direct images), how they
  attach, and the columns they share with the science;
* ``asn_optical_path``: valid NIRSpec paths per detector, NIRCam coronagraph
  detectors without the occulter;
* ``asn_candidate_policy``: which candidate types keep which associations.

Everything that decides is SQL (SQLAlchemy Core, SQLite and PostgreSQL):
Python only reads the pool (``inventory``) and formats the result. An evaluation
(:class:`~l2rules.association.evaluation.Evaluation`) runs in stages, one module each, in
this order; each stage is an INSERT ... SELECT into a temporary table, kept as an attribute
of the evaluation, which keeps every statement small enough for the planners. One evaluation runs the
stages once for any number of pools (``Evaluation.run(pool_ids)``), the pool a column of their tables
and of every key, grouping and window that is per pool in the pipeline (candidates, asn_ids,
duplicates, sequence numbers):

0. ``rules``: the rules in force at the catalog point asked for, constraint groups expanded;
1. ``exposures``: the pool's ``exposures``, values normalised (lower case, empty values NULL)
   with derived columns (member type, TSO, optical mode), and their ``candidate_members`` - an
   exposure belongs to every candidate whose id occurs in its ASN_CANDIDATE text, as in the
   pipeline;
2. ``science``: the rules whose science conditions an exposure meets (``science_rules``,
   one expression per rule, evaluated once per exposure), then per candidate (``science``);
3. ``companions``: companions per science (``eligible_companions``),
   eligible by their own conditions, ``matched`` on the grouping keys, attached as the pipeline's
   processing order allows, overlapping nods left out (``pairs``); WFSS direct images;
4. ``members``: ``associations`` (WFSS ones need a direct image), their ``members`` after
   imprint pruning, the candidate policy (``kept``), the discovery pass's copies
   (``with_copies``), member names (``named_members``: ``_rate``/``_rateints``, WFSS level-3
   products);
5. ``pruning``: duplicate pruning (``deduplicated``, ``pruned``), sequence numbers (``sequenced``);
6. ``answers`` (for the work list and the stored answers only): each member exposure's answer -
   its member types and, for the associations it is the science of, their asn_types, its Level 2b
   inputs, the files and rules, each sorted and ';'-joined.

``explain`` reads the stages of one evaluation; ``api`` holds the public functions; ``selection``
which candidates an evaluation makes (asn_generate's ``-i``, ``--all-candidates``, ``--DMS``).

The pipeline builds associations in one pass over the pool, so a few of its
results depend on row order; ``asn_companion.attach`` states the rules l2rules
follows instead. Other approximations: optional-equal keys compare with the
science only; the nearest direct image is by EXPSPCIN, then pool order;
sequence numbers follow reverse creation order (a nod group is created at
its first nod); members are listed in pool order (rules with nods: the
science, the other nods, then the rest), and the association's target is its
first exposure member's TARGETID (a nod group's, its first nod's, member or
not). The pipeline adds a companion that precedes its science in the pool after the science when it reaches it again by
reprocessing (``probe_ifu_imprints``, ``probe_wfss_background``,
``probe_lrs_nod_ta``): there the member order differs, the members do not.

The files (``write_associations``) have every key ``asn_generate`` writes, in
its order; ``code_version`` names l2rules, ``version_id`` is null unless
asked for, and ``constraints`` lists l2rules' science conditions that held,
where the pipeline writes the text of its Python constraint objects.
"""

from __future__ import annotations

from .api import (
                  DEGRADED_NOTOK,
                  DEGRADED_OK,
                  IMPACT_COLUMNS,
                  Association,
                  WrittenFiles,
                  asn,
                  associations,
                  impact,
                  iter_associations,
                  processing,
                  science_by_stem,
                  science_of,
                  write_associations,
)
from .columns import ACCESSIBLE, DERIVED_COLUMNS, EMPTY, POOL_COLUMNS, REQUIRED_POOL_COLUMNS, AssociationError
from .explain import EXPLAIN_COLUMNS, explain
from .selection import Selection

__all__ = [
    "ACCESSIBLE", "DEGRADED_NOTOK", "DEGRADED_OK", "DERIVED_COLUMNS", "EMPTY", "EXPLAIN_COLUMNS", "IMPACT_COLUMNS",
    "POOL_COLUMNS", "REQUIRED_POOL_COLUMNS", "Association", "AssociationError", "Selection", "WrittenFiles", "asn",
    "associations", "explain", "impact", "iter_associations", "processing", "science_by_stem", "science_of",
    "write_associations",
]
