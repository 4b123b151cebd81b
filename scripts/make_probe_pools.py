#!/usr/bin/env python3
"""Probe pools: small pools made from sample-pool rows to exercise the pipeline's order-dependent corners.

MIRI LRS TA confirms before/after/between sciences, imprint pruning (IFU, IFU nods, special
rules), background-type WFSS images and grisms, doubly flagged exposures. Writes
``probe_*.csv`` to tests/data/probes (or the directory given); their references come from the
jwst oracle (see tests/data/reference/README.md).
"""
import csv
import io
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
SRC = HERE / "samples" / "pools"
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "tests" / "data" / "probes"
def read(name):
    lines = [line for line in open(SRC / f"{name}.csv") if not line.startswith("#")]
    r = csv.reader(io.StringIO("".join(lines)), delimiter="|")
    head = next(r)
    rows = [dict(zip([h.lower() for h in head], x)) for x in r if x]
    return [h.lower() for h in head], rows
def base(name, exp_type, **where):
    head, rows = read(name)
    for r in rows:
        if r["exp_type"].lower() == exp_type and all(r.get(k, "").lower() == v for k, v in where.items()):
            return head, dict(r)
    raise KeyError(exp_type)
n = [0]
def row(b, **kw):
    n[0] += 1
    r = dict(b)
    r.update({k: str(v) for k, v in kw.items()})
    r["filename"] = f"jw_{n[0]:05d}_uncal.fits"
    return r
def write(name, head, rows):
    with open(OUT / f"{name}.csv", "w") as f:
        f.write("|".join(head) + "\n")
        for r in rows:
            f.write("|".join(r.get(h, "null") for h in head) + "\n")
C1 = "[('o001', 'observation')]"
# P1: MIRI LRS with TA confirms in various positions
head, lrs = base("pool_007_spec_miri", "mir_lrs-fixedslit")
for variant, order in {"ta_first": "TSB", "ta_last": "SBT", "ta_middle": "STSB", "two_ta_first": "TTSB"}.items():
    n[0] = 0
    rows = []
    for i, ch in enumerate(order):
        if ch == "T":
            rows.append(row(lrs, exp_type="mir_taconfirm", pntgtype="target_acquisition", asn_candidate=C1,
                            obs_id=lrs["obs_id"] if i == 0 else lrs["obs_id"][:-1] + "9"))
        elif ch == "S":
            rows.append(row(lrs, asn_candidate=C1, bkgdtarg="f"))
        else:
            rows.append(row(lrs, asn_candidate=C1, bkgdtarg="t"))
    write(f"probe_lrs_{variant}", head, rows)
# P1b: LRS along-slit nods with a TA confirm
n[0] = 0
rows = [row(lrs, exp_type="mir_taconfirm", pntgtype="target_acquisition", asn_candidate=C1),
        row(lrs, patttype="along-slit-nod", patt_num=1, asn_candidate=C1),
        row(lrs, patttype="along-slit-nod", patt_num=2, asn_candidate=C1),
        row(lrs, exp_type="mir_taconfirm", pntgtype="target_acquisition", asn_candidate=C1)]
write("probe_lrs_nod_ta", head, rows)
# P2: NRS IFU (not nodded) with imprints of several targets and dithers
head, ifu = base("pool_017_spec_nirspec_lv2imprint", "nrs_ifu")
n[0] = 0
common = dict(asn_candidate=C1, patttype="none", mostilno="1")
rows = [row(ifu, targetid=1, dithptin=1, is_imprt="f", bkgdtarg="f", **common),
        row(ifu, targetid=1, dithptin=2, is_imprt="f", bkgdtarg="f", **common),
        row(ifu, targetid=1, dithptin=1, is_imprt="t", bkgdtarg="f", **common),
        row(ifu, targetid=1, dithptin=2, is_imprt="t", bkgdtarg="f", **common),
        row(ifu, targetid=1, dithptin=3, is_imprt="t", bkgdtarg="f", **common),
        row(ifu, targetid=2, dithptin=1, is_imprt="t", bkgdtarg="f", **common),
        row(ifu, targetid=1, dithptin=1, is_imprt="t", bkgdtarg="t", **common),
        row(ifu, targetid=1, dithptin=1, is_imprt="f", bkgdtarg="t", **common)]
write("probe_ifu_imprints", head, rows)
# P2b: IFU 2-point nods with imprints
n[0] = 0
common = dict(asn_candidate=C1, patttype="2-point-nod", mostilno="1")
rows = [row(ifu, targetid=1, dithptin=1, patt_num=1, is_imprt="f", bkgdtarg="f", **common),
        row(ifu, targetid=1, dithptin=2, patt_num=2, is_imprt="f", bkgdtarg="f", **common),
        row(ifu, targetid=1, dithptin=1, patt_num=1, is_imprt="t", bkgdtarg="f", **common),
        row(ifu, targetid=1, dithptin=2, patt_num=2, is_imprt="t", bkgdtarg="f", **common),
        row(ifu, targetid=1, dithptin=3, patt_num=3, is_imprt="t", bkgdtarg="f", **common),
        row(ifu, targetid=3, dithptin=1, patt_num=1, is_imprt="t", bkgdtarg="f", **common)]
write("probe_ifu_nod_imprints", head, rows)
# P3: NIRISS WFSS with background-type images and grisms
head, grism = base("pool_019_niriss_wfss", "nis_wfss")
_, image = base("pool_019_niriss_wfss", "nis_image")
n[0] = 0
rows = [row(image, asn_candidate=C1, expspcin=1),
        row(grism, asn_candidate=C1, expspcin=2),
        row(image, asn_candidate=C1, expspcin=3, bkgdtarg="t"),
        row(grism, asn_candidate=C1, expspcin=4, bkgdtarg="t"),
        row(grism, asn_candidate=C1, expspcin=5)]
write("probe_wfss_background", head, rows)
# P4: doubly flagged NIRCam images
head, img = base("pool_003_image_nircam", "nrc_image")
n[0] = 0
rows = [row(img, asn_candidate=C1, bkgdtarg="f", is_psf="f"),
        row(img, asn_candidate=C1, bkgdtarg="t", is_psf="t"),
        row(img, asn_candidate=C1, bkgdtarg="t", is_psf="f"),
        row(img, asn_candidate=C1, bkgdtarg="f", is_psf="f")]
write("probe_doubly_flagged", head, rows)
rows = [rows[1], rows[0], rows[2], rows[3]]
write("probe_doubly_flagged_first", head, rows)

# --- imprints of the special rules ---
head, ifu = base("pool_017_spec_nirspec_lv2imprint", "nrs_ifu")
C1 = "[('o001', 'observation')]"
common = dict(asn_candidate=C1, patttype="none", mostilno="1")
def mk(spec):
    n[0] = 0
    out = []
    for s in spec:
        t, d, imp, bk, psf = s
        out.append(row(ifu, targetid=t, dithptin=d, is_imprt=imp, bkgdtarg=bk, is_psf=psf, **common))
    return out
# science-bkg first, then imprints
write("probe_special_bkg_first", head, mk([(1,1,"f","t","f"), (1,1,"t","t","f"), (1,1,"t","f","f"), (1,2,"t","t","f")]))
# psf science with imprints
write("probe_special_psf", head, mk([(1,1,"t","f","f"), (1,1,"t","t","f"), (1,1,"f","f","t"), (1,2,"t","f","f")]))
# psf science first
write("probe_special_psf_first", head, mk([(1,1,"f","f","t"), (1,1,"t","f","f"), (1,1,"t","t","f"), (1,2,"t","f","f")]))
# bkg science last, imprints only bk f
write("probe_special_bkg_only_sci_imprints", head, mk([(1,1,"t","f","f"), (1,2,"t","f","f"), (1,1,"f","t","f")]))
print(f"probe pools written to {OUT}")

# --- MIRI LRS nods whose pattern numbers contain one another ---
head, lrs = base("pool_007_spec_miri", "mir_lrs-fixedslit")
n[0] = 0
write("probe_lrs_nod_pattnum_text", head,
      [row(lrs, patttype="along-slit-nod", patt_num=p, asn_candidate=C1) for p in (1, 2, 12)])
print("and probe_lrs_nod_pattnum_text")
