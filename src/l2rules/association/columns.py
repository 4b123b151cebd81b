"""The pool columns an evaluation reads, the columns it derives, and the error it raises."""

from __future__ import annotations

from ..config import L2RulesError
from ..inventory import FLAG_FALSE, FLAG_NULL

#: Values the pipeline reads as "not set" (after lower-casing): the loader's empty and false flag texts.
EMPTY = tuple(sorted(FLAG_NULL | FLAG_FALSE))
#: Pool columns the conditions read.
POOL_COLUMNS = ("filename", "program", "exp_type", "pntgtype", "instrume", "detector", "filter", "band", "pupil",
                "grating", "fxd_slit", "subarray", "channel", "tsovisit", "visitype", "dms_note", "is_psf",
                "is_imprt", "bkgdtarg", "patttype", "patt_num", "numdthpt", "subpxpns", "subpxpts", "expspcin",
                "mostilno", "msametfl", "msastate", "opmode", "lamp", "targetid", "obs_id", "dithptin", "exposerr")
#: Columns the pipeline needs in a pool; without them it makes no association at all.
REQUIRED_POOL_COLUMNS = ("asn_candidate", "targetid")
#: Columns derived in SQL that conditions may name besides the pool columns.
DERIVED_COLUMNS = ("cand_raw", "member_type", "sci_type", "is_tso", "opt_filter",
                   "opt_pupil", "subpx_fs", "subpx_ov", "slit_class", "exp_detector", "exp_pupil", "dms_note_exp")
#: Every column a condition or key may name.
ACCESSIBLE = tuple(column for column in POOL_COLUMNS) + DERIVED_COLUMNS


class AssociationError(L2RulesError):
    exit_code = 2
