"""The detector evaluation on the test split (DESIGN s3 "Evaluation"), as one JSON-able dict.

Scores are logits; probabilities are their sigmoid.  Every metric carries bootstrap 68 %
and 95 % equal-tailed intervals (``n_boot`` >= 1000 resamples, positives and negatives
resampled separately), except proportions within a stratum (tier recall, FPR per
confuser category / condition bin), which carry Beta(k+1, n-k+1) intervals.

Thresholds: the operating points of ``lensaudit.spec`` (FPR 1e-2 and 1e-3), each chosen on
the *validation* split (``evaluation.operating``) and applied unchanged to the test split.
A threshold the validation negatives cannot resolve (fewer than 1/FPR of them) is reported
``sufficient: false`` with null metrics: never extrapolated.  Recall and precision at a
threshold are bootstrapped with the threshold held fixed.  p = 0.5 is not an operating point.
Beside them (``purity_thresholds``): the fixed-purity points of ``lensaudit.spec.PURITY_POINTS``
(purity = pi TPR / (pi TPR + (1 - pi) FPR) at the stated prevalence pi), also chosen on the
validation split, with test recall and precision (bootstrap), FPR (Beta) and purity at pi
(bootstrap, threshold fixed; a test FPR of 0 makes purity 1 a bound, said in ``caveat``).
Brier score with its skill against the constant-prevalence forecast (BSS = 1 - BS/BS_ref,
BS_ref = prevalence (1 - prevalence) of the scored rows) beside ECE/MCE: a constant forecast
is perfectly calibrated in aggregate, so ECE alone cannot tell a useless model from a good one.
ECE / MCE: 15 equal-frequency bins over all rows and over the top 1 % of scores (null,
``sufficient: false``, when the top 1 % holds fewer rows than bins).  ECE and MCE are
biased upwards under resampling, so their percentile interval can lie above the point
estimate; it is reported as measured, not re-centred.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lensaudit.auc import roc_auc
from lensaudit.evaluation.metrics import (beta_interval, calibration_errors, recall_precision, sigmoid,
                                          stratified_bootstrap)
from lensaudit.evaluation.operating import operating_thresholds, purity_thresholds
from lensaudit.spec import PURITY_POINTS, PurityPoint
from lensaudit.survey.photometry import depth_ivar_to_mag5sigma

CALIBRATION_BINS = 15
PSF_EDGES_ARCSEC = (0.0, 0.9, 1.05, 1.2, 1.35, 1.5, 1.65, 1.8, np.inf)
DEPTH_EDGES_MAG = (-np.inf, 22.5, 23.0, 23.5, 24.0, 24.5, np.inf)
INTERVAL_KEYS = ("lo68", "hi68", "lo95", "hi95")


def null_metric(reason: str) -> dict:
    return {"value": None, "lo68": None, "hi68": None, "lo95": None, "hi95": None, "sufficient": False,
            "reason": reason}


def beta_metric(k: int, n: int) -> dict:
    if n == 0:
        return {**null_metric("no rows"), "k": 0, "n": 0}
    lo68, hi68 = beta_interval(k, n, 0.68)
    lo95, hi95 = beta_interval(k, n, 0.95)
    return {"value": k / n, "k": int(k), "n": int(n), "lo68": lo68, "hi68": hi68, "lo95": lo95, "hi95": hi95}


def _safe(fn):
    """A metric that is undefined on a resample (e.g. precision with nothing selected) is NaN there."""
    def wrapped(s, y):
        try:
            v = fn(s, y)
        except ValueError:
            return float("nan")
        return v if v is not None else float("nan")
    return wrapped


def bootstrap_metric(fn, scores, labels, n_boot, seed) -> dict:
    out = stratified_bootstrap(_safe(fn), scores, labels, n_boot=n_boot, seed=seed)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def _top_fraction(s: np.ndarray, frac: float) -> np.ndarray:
    n = max(1, int(math.ceil(frac * len(s))))
    return np.argsort(-s, kind="stable")[:n]


def _calibration(probs, labels, top: float | None):
    p, y = np.asarray(probs), np.asarray(labels)
    if top is not None:
        sel = _top_fraction(p, top)
        p, y = p[sel], y[sel]
    return calibration_errors(p, y, CALIBRATION_BINS)


def condition_bins(meta: pd.DataFrame) -> dict[str, pd.Series]:
    """Bin labels of the observing conditions: psfsize_r [arcsec], psfdepth_r as 5-sigma AB
    mag (from the inverse-variance depth), nobs_z_bin (the manifest's stratum)."""
    depth_mag = pd.Series(depth_ivar_to_mag5sigma(meta["psfdepth_r"].to_numpy(float)), index=meta.index)
    return {
        "psfsize_r_arcsec": pd.cut(meta["psfsize_r"].astype(float), PSF_EDGES_ARCSEC, right=False).astype(str),
        "psfdepth_r_mag5sigma": pd.cut(depth_mag, DEPTH_EDGES_MAG, right=False).astype(str),
        "nobs_z_bin": meta["nobs_z_bin"].astype(str),
    }


def evaluate(logits: np.ndarray, meta: pd.DataFrame, val_logits, val_labels, n_boot: int = 1000, seed: int = 0,
             purity_points: tuple[PurityPoint, ...] = PURITY_POINTS) -> dict:
    """All test-split metrics with intervals.  ``meta`` holds label, tier, pool,
    confuser_category and the condition columns of each scored row; the operating thresholds
    come from ``val_logits`` / ``val_labels`` (the validation split)."""
    s = np.asarray(logits, dtype=np.float64)
    y = meta["label"].to_numpy().astype(int)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"the test split holds {n_pos} positives and {n_neg} negatives: an evaluation needs both "
                         "classes (no AUC is invented)")
    if n_boot < 1000:
        raise ValueError(f"n_boot {n_boot} < 1000 resamples")
    probs = sigmoid(s)
    out: dict = {"n_rows": len(s), "n_positives": n_pos, "n_negatives": n_neg, "n_boot": n_boot,
                 "bootstrap": "stratified by label, equal-tailed percentile intervals", "score": "logit",
                 "metrics": {}, "thresholds": {}, "purity_thresholds": {}}
    m = out["metrics"]
    m["roc_auc"] = bootstrap_metric(lambda a, b: roc_auc(a[b == 1], a[b == 0]), s, y, n_boot, seed)
    thresholds = {name: (t["logit"], t["sufficient"], t["definition"])
                  for name, t in operating_thresholds(val_logits, val_labels).items()}
    for name, (t, ok, what) in thresholds.items():
        entry = {"logit": t if ok else None, "probability": float(sigmoid(t)) if ok else None, "sufficient": ok,
                 "definition": what, "chosen_on": "val"}
        if ok:
            entry["recall"] = bootstrap_metric(lambda a, b, t=t: recall_precision(a, b, t)[0], s, y, n_boot, seed)
            entry["precision"] = bootstrap_metric(lambda a, b, t=t: recall_precision(a, b, t)[1], s, y, n_boot, seed)
            entry["fpr"] = beta_metric(int((s[y == 0] >= t).sum()), n_neg)
            entry["tier_recall"] = {tier: beta_metric(int((s[(y == 1) & (meta["tier"] == tier).to_numpy()] >= t).sum()),
                                                       int(((y == 1) & (meta["tier"] == tier).to_numpy()).sum()))
                                    for tier in ("A", "B")}
            entry["fpr_by_confuser_category"] = _fpr_by(s, y, t, meta["confuser_category"].fillna("N1").astype(str))
            entry["fpr_by_condition"] = {k: _fpr_by(s, y, t, v) for k, v in condition_bins(meta).items()}
        else:
            for k in ("recall", "precision", "fpr"):
                entry[k] = null_metric(what)
        out["thresholds"][name] = entry
    for p in purity_points:
        out["purity_thresholds"][p.name] = _purity_entry(
            purity_thresholds(val_logits, val_labels, (p,))[p.name], p, s, y, meta, n_boot, seed)
    m["ece"] = bootstrap_metric(lambda a, b: _calibration(sigmoid(a), b, None)[0], s, y, n_boot, seed)
    m["brier"] = bootstrap_metric(lambda a, b: brier(sigmoid(a), b), s, y, n_boot, seed)
    m["brier_skill_vs_prevalence"] = bootstrap_metric(lambda a, b: brier_skill(sigmoid(a), b), s, y, n_boot, seed)
    m["mce"] = bootstrap_metric(lambda a, b: _calibration(sigmoid(a), b, None)[1], s, y, n_boot, seed)
    n_top = max(1, int(math.ceil(0.01 * len(s))))
    if n_top >= CALIBRATION_BINS:
        m["ece_top1pct"] = bootstrap_metric(lambda a, b: _calibration(sigmoid(a), b, 0.01)[0], s, y, n_boot, seed)
        m["mce_top1pct"] = bootstrap_metric(lambda a, b: _calibration(sigmoid(a), b, 0.01)[1], s, y, n_boot, seed)
    else:
        why = f"top 1 % holds {n_top} rows < {CALIBRATION_BINS} bins"
        m["ece_top1pct"], m["mce_top1pct"] = null_metric(why), null_metric(why)
    out["reliability"] = reliability_table(probs, y)
    return out


def _purity_entry(op: dict, point: PurityPoint, s, y, meta, n_boot, seed) -> dict:
    """One fixed-purity point: its validation choice and the test split's metrics at it."""
    t, ok = op["logit"], op["sufficient"]
    entry = {**{k: op[k] for k in ("target_purity", "prevalence", "max_fpr_needed", "n_val_positives",
                                   "n_val_negatives", "val_recall", "val_fpr", "val_purity")},
             "logit": t, "probability": float(sigmoid(t)) if ok else None, "sufficient": ok,
             "definition": op["definition"], "chosen_on": "val"}
    if not ok:
        for k in ("recall", "precision", "fpr", "purity"):
            entry[k] = null_metric(op["definition"])
        return entry
    entry["recall"] = bootstrap_metric(lambda a, b: recall_precision(a, b, t)[0], s, y, n_boot, seed)
    entry["precision"] = bootstrap_metric(lambda a, b: recall_precision(a, b, t)[1], s, y, n_boot, seed)
    k_fp = int((s[y == 0] >= t).sum())
    entry["fpr"] = beta_metric(k_fp, int((y == 0).sum()))

    def purity(a, b):
        return float(point.purity((a[b == 1] >= t).mean(), (a[b == 0] >= t).mean()))

    entry["purity"] = {**bootstrap_metric(purity, s, y, n_boot, seed), "prevalence": point.prevalence}
    if k_fp == 0:
        entry["purity"]["caveat"] = (f"no test negative at or above the threshold: purity 1 is bounded by the test "
                                     f"FPR resolution 1/{int((y == 0).sum())}, not measured")
    entry["tier_recall"] = {tier: beta_metric(int((s[(y == 1) & (meta["tier"] == tier).to_numpy()] >= t).sum()),
                                              int(((y == 1) & (meta["tier"] == tier).to_numpy()).sum()))
                            for tier in ("A", "B")}
    return entry


def brier(probs, labels) -> float:
    p, y = np.asarray(probs, float), np.asarray(labels, float)
    return float(np.mean((p - y) ** 2))


def brier_skill(probs, labels) -> float:
    """1 - BS / BS_ref with BS_ref the constant-prevalence forecast's Brier score."""
    y = np.asarray(labels, float)
    prev = y.mean()
    ref = prev * (1 - prev)
    if ref <= 0:
        raise ValueError("one class only: no skill score")
    return 1.0 - brier(probs, y) / ref


def _fpr_by(s, y, t, groups: pd.Series) -> dict:
    neg = y == 0
    g = np.asarray(groups)
    return {str(k): beta_metric(int((s[neg & (g == k)] >= t).sum()), int((neg & (g == k)).sum()))
            for k in sorted(pd.unique(g[neg]))}


def reliability_table(probs, labels, n_bins: int = CALIBRATION_BINS) -> list[dict]:
    """Equal-frequency bins: mean predicted probability vs observed positive fraction."""
    p, y = np.asarray(probs), np.asarray(labels)
    order = np.argsort(p, kind="stable")
    return [{"mean_prob": float(p[b].mean()), "frac_pos": float(y[b].mean()), "n": int(len(b))}
            for b in np.array_split(order, min(n_bins, len(p))) if len(b)]


def roc_curve(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every distinct threshold, from (0, 0) to (1, 1)."""
    s, y = np.asarray(logits, float), np.asarray(labels).astype(int)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    return np.r_[0.0, fp / max(1, fp[-1])], np.r_[0.0, tp / max(1, tp[-1])]


def missing_intervals(report: dict) -> list[str]:
    """Paths of metrics in ``report`` that carry a value but not all four interval ends."""
    bad = []

    def walk(node, path):
        if isinstance(node, dict):
            if "value" in node:
                if node["value"] is not None and any(node.get(k) is None for k in INTERVAL_KEYS):
                    bad.append(path)
                return
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else k)

    walk({k: report[k] for k in ("metrics", "thresholds", "purity_thresholds", "baseline_shortcut_lr") if k in report}, "")
    return bad
