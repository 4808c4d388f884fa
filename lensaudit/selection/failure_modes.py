"""Failure-mode taxonomy (DESIGN s2 ``failure_modes``).

* false positives: FPR of the test negatives per N2 confuser category (N1 as its own
  row) x condition bin (``lensaudit.evaluation.report.condition_bins``), Beta intervals;
* false negatives among injections (not detected by the rule of
  ``completeness.detections``; injections into hosts that are themselves false positives are
  not misses and are left out), each attributed to the first cause that applies:
  ``not_observable`` (the matched-filter S/N of ``lensaudit.injection.visibility`` is below its threshold), ``psf_blended``
  (theta_E / PSF FWHM_r < 0.8), ``low_sb`` (lensed arc r-band surface brightness fainter
  than 25.0 mag/arcsec^2, the lensed flux src_flux_r x magnification spread over a ring of
  radius theta_E and width FWHM_r), else ``other`` (visible, resolved, bright: the model's
  own miss).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensaudit.evaluation.report import beta_metric, condition_bins
from lensaudit.selection.completeness import detections

BLEND_RATIO = 0.8
LOW_SB_MAG_PER_ARCSEC2 = 25.0
CAUSES = ("not_observable", "psf_blended", "low_sb", "other")


def arc_sb_mag_per_arcsec2(inj: pd.DataFrame) -> np.ndarray:
    """Mean lensed r-band surface brightness [AB mag/arcsec^2] over the ring 2 pi theta_E x FWHM_r."""
    area = 2 * np.pi * inj["theta_e_arcsec"].to_numpy(float) * inj["psf_fwhm_r_arcsec"].to_numpy(float)
    mag = inj["src_mag_r"].to_numpy(float) - 2.5 * np.log10(np.clip(inj["magnification"].to_numpy(float), 1e-6, None))
    return mag + 2.5 * np.log10(area)


def attribute_misses(inj: pd.DataFrame, threshold_logit: float) -> pd.DataFrame:
    """The missed injections with a ``cause`` column."""
    det, host_fp = detections(inj, threshold_logit)
    miss = inj[~det & ~host_fp].copy()
    ratio = miss["theta_e_arcsec"] / miss["psf_fwhm_r_arcsec"]
    sb = arc_sb_mag_per_arcsec2(miss)
    cause = np.select([~miss["observable"].astype(bool), ratio < BLEND_RATIO, sb > LOW_SB_MAG_PER_ARCSEC2],
                      list(CAUSES[:3]), default="other")
    miss["cause"], miss["arc_sb_r_mag_per_arcsec2"], miss["theta_e_over_psf"] = cause, sb, ratio
    return miss


def miss_summary(inj: pd.DataFrame, miss: pd.DataFrame) -> dict:
    n = len(inj)
    return {"injections": n, "missed": len(miss),
            "by_cause": {c: beta_metric(int((miss["cause"] == c).sum()), len(miss)) for c in CAUSES}}


def fpr_by_category_and_condition(scored: pd.DataFrame, threshold_logit: float) -> pd.DataFrame:
    """Rows (category, condition, bin, n, k, fpr, lo68, hi68, lo95, hi95) over test negatives."""
    neg = scored[scored["label"] == 0]
    cat = neg["confuser_category"].fillna("N1").replace("", "N1").astype(str)
    rows = []
    for cond, bins in condition_bins(neg).items():
        for (c, b), g in neg.groupby([cat, bins]):
            k = int((g["logit"] >= threshold_logit).sum())
            m = beta_metric(k, len(g))
            rows.append({"category": c, "condition": cond, "bin": str(b), "n": len(g), "k": k, "fpr": m["value"],
                         **{x: m[x] for x in ("lo68", "hi68", "lo95", "hi95")}})
    return pd.DataFrame(rows)
