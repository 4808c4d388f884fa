"""Adversarial gates on the frozen detector (DESIGN s3), from ``adversarial`` measurements.

Each takes plain arrays, so tests can plant a detector with a known response."""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp, spearmanr

from lensaudit.gates.result import ERROR, GateResult, cannot_compute

ASSET = "completeness_table"
MIN_ROWS = 10


def null_injection_ks(null_logits, host_logits, p_min: float = 0.05) -> GateResult:
    name = "adversarial_null_injection_ks"
    a, b = np.asarray(null_logits, float), np.asarray(host_logits, float)
    if min(len(a), len(b)) < MIN_ROWS:
        return cannot_compute(name, ASSET, ERROR, f"{len(a)} null / {len(b)} host scores < {MIN_ROWS}", f"KS p > {p_min}")
    res = ks_2samp(a, b)
    return GateResult(name, ASSET, bool(res.pvalue > p_min), ERROR, float(res.pvalue), f"KS p > {p_min}",
                      {"ks_statistic": float(res.statistic), "n": int(len(a)),
                       "max_abs_logit_change": float(np.max(np.abs(a - b))) if len(a) == len(b) else None})


def synthetic_ring(host_logits, ring_logits, threshold_logit: float, max_fraction: float = 0.05) -> GateResult:
    name = "adversarial_synthetic_ring"
    h, r = np.asarray(host_logits, float), np.asarray(ring_logits, float)
    below = h < threshold_logit
    if below.sum() < MIN_ROWS:
        return cannot_compute(name, ASSET, ERROR, f"{int(below.sum())} hosts below threshold < {MIN_ROWS}",
                              f"fraction <= {max_fraction}")
    frac = float((r[below] >= threshold_logit).mean())
    return GateResult(name, ASSET, frac <= max_fraction, ERROR, frac, f"fraction pushed over <= {max_fraction}",
                      {"hosts": int(len(h)), "hosts_below_threshold": int(below.sum()),
                       "pushed_over": int((r[below] >= threshold_logit).sum()), "threshold_logit": threshold_logit,
                       "mean_logit_change": float(np.mean(r - h))})


def arc_suppression(orig_logits, suppressed_logits) -> GateResult:
    name = "adversarial_arc_suppression"
    o, s = np.asarray(orig_logits, float), np.asarray(suppressed_logits, float)
    if len(o) < 3:
        return cannot_compute(name, ASSET, ERROR, f"{len(o)} lenses < 3", "mean logit drop > 0")
    drop = o - s
    return GateResult(name, ASSET, bool(drop.mean() > 0), ERROR, float(drop.mean()), "mean logit drop > 0",
                      {"lenses": int(len(o)), "fraction_dropped": float((drop > 0).mean()),
                       "median_drop": float(np.median(drop))})


def spearman_positive(logits, x, what: str) -> GateResult:
    name = f"adversarial_spearman_{what}"
    a, b = np.asarray(logits, float), np.asarray(x, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < MIN_ROWS:
        return cannot_compute(name, ASSET, ERROR, f"{int(ok.sum())} injections < {MIN_ROWS}", "rho > 0")
    rho, p = spearmanr(a[ok], b[ok])
    return GateResult(name, ASSET, bool(rho > 0), ERROR, float(rho), "Spearman rho > 0",
                      {"p_value": float(p), "n": int(ok.sum())})
