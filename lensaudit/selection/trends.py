"""Trend statistics of the selection function on the injections (DESIGN s3 "Adversarial
gates": completeness vs theta_E and vs arc S/N with a one-sided significance bound and an
effect size).

For a driver x (theta_E, the arc's matched-filter S/N): Spearman rho of the injected
stamps' logit against x, and the completeness difference between the top and the bottom
tercile of x.  Injections share hosts, so both get a **host-cluster bootstrap** (resample
the distinct hosts with replacement, keep all their injections); the one-sided lower bound
at ``level`` is the (1 - level) percentile of the resampled values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def _tercile_diff(x: np.ndarray, det: np.ndarray, lo_edge: float, hi_edge: float) -> float:
    bottom, top = det[x <= lo_edge], det[x >= hi_edge]
    if not len(bottom) or not len(top):
        return float("nan")
    return float(top.mean() - bottom.mean())


def trend(x, logit, detected, host, n_boot: int, seed: int, level: float) -> dict:
    """{rho, rho_lower, tercile_diff, tercile_diff_lower, c_bottom, c_top, n, n_detected, n_hosts}.
    Tercile edges are fixed on the full sample (the 1/3 and 2/3 quantiles of x)."""
    x, s, d = np.asarray(x, float), np.asarray(logit, float), np.asarray(detected, bool)
    h = np.asarray(host)
    ok = np.isfinite(x) & np.isfinite(s)
    x, s, d, h = x[ok], s[ok], d[ok], h[ok]
    out = {"n": int(len(x)), "n_detected": int(d.sum()), "n_hosts": int(len(np.unique(h))), "level": level}
    if len(x) < 3:
        return {**out, "rho": np.nan, "rho_lower": np.nan, "tercile_diff": np.nan, "tercile_diff_lower": np.nan,
                "c_bottom": np.nan, "c_top": np.nan}
    lo_edge, hi_edge = np.quantile(x, [1 / 3, 2 / 3])
    out.update(rho=_spearman(s, x), tercile_diff=_tercile_diff(x, d, lo_edge, hi_edge),
               c_bottom=float(d[x <= lo_edge].mean()), c_top=float(d[x >= hi_edge].mean()))
    groups = list(pd.Series(np.arange(len(x))).groupby(h).indices.values())
    rng = np.random.default_rng(seed)
    rhos, diffs = np.empty(n_boot), np.empty(n_boot)
    for i in range(n_boot):
        idx = np.concatenate([groups[j] for j in rng.integers(0, len(groups), len(groups))])
        rhos[i] = _spearman(s[idx], x[idx])
        diffs[i] = _tercile_diff(x[idx], d[idx], lo_edge, hi_edge)
    q = (1 - level) * 100
    out["rho_lower"] = float(np.nanpercentile(rhos, q))
    out["tercile_diff_lower"] = float(np.nanpercentile(diffs, q))
    return out
