"""Evaluation metrics of a binary detector with honest intervals (DESIGN s3 "Evaluation").

Scores are logits or probabilities (``probs`` = sigmoid of logits for calibration).
- recall / precision at a threshold (precision is NaN when nothing is selected);
- the threshold reaching a target FPR on the negatives: the smallest score t with
  FPR(score >= t) <= target; *insufficient* when there are fewer than 1/target negatives
  (the FPR cannot be resolved), never extrapolated;
- the threshold reaching a target purity pi TPR / (pi TPR + (1 - pi) FPR) at a stated
  prevalence pi (``threshold_at_purity``, ``spec.PurityPoint``), insufficient where the
  negatives cannot resolve the FPR that purity needs;
- ECE and MCE over equal-frequency bins (15 by default) of predicted probability:
  ECE = sum_b (n_b/N) |mean p_b - frac positives_b|, MCE = max_b of the same gap;
- Beta(k+1, n-k+1) intervals for a proportion k/n (uniform prior): equal-tailed for
  0 < k < n, and the highest-posterior-density interval at k = 0 ([0, q_level]) and k = n
  ([q_(1-level), 1]), where the posterior density is monotone, so that the interval always
  contains the point estimate k/n (an equal-tailed interval excludes 0 at k = 0);
- stratified bootstrap (positives and negatives resampled separately) for any metric.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta as beta_dist


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def recall_precision(scores, labels, threshold: float) -> tuple[float, float]:
    s, y = np.asarray(scores, float), np.asarray(labels).astype(bool)
    sel = s >= threshold
    recall = float(sel[y].mean()) if y.any() else float("nan")
    precision = float(y[sel].mean()) if sel.any() else float("nan")
    return recall, precision


def threshold_at_fpr(scores, labels, target_fpr: float) -> tuple[float, bool]:
    """(threshold, sufficient).  threshold = inf when insufficient."""
    s, y = np.asarray(scores, float), np.asarray(labels).astype(bool)
    neg = np.sort(s[~y])[::-1]
    n = len(neg)
    if n < int(np.ceil(1.0 / target_fpr)):
        return float("inf"), False
    k = int(np.floor(target_fpr * n))  # at most k negatives may score >= t
    # t just above the (k+1)-th highest negative score: exactly k negatives at or above t
    t = np.nextafter(neg[k], np.inf)
    return float(t), True


def threshold_at_purity(scores, labels, point) -> dict:
    """The smallest threshold whose prevalence-weighted purity on (``scores``, ``labels``)
    reaches ``point.target_purity`` at ``point.prevalence`` (a ``spec.PurityPoint``).

    Candidates are the distinct scores u (the selection {score >= u}); purity need not be
    monotone in u, the smallest u that reaches the target is taken, and the threshold is set
    one ulp above the next lower distinct score (the smallest logit giving that selection, as
    ``threshold_at_fpr`` sits one ulp above the (k+1)-th negative).  Returns {logit (inf when
    insufficient), sufficient, reason, tpr, fpr, purity, n_positives, n_negatives}.
    Insufficient: no positive or no negative; fewer negatives than ``point.min_negatives``
    (1/n_neg above the FPR the purity needs even at recall 1); no threshold reaches the
    purity; or the chosen one has zero false positives while the FPR the purity needs at its
    recall is below the resolution 1/n_neg (its purity 1 is then no measurement)."""
    s, y = np.asarray(scores, float), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    out = {"logit": float("inf"), "sufficient": False, "reason": "", "tpr": None, "fpr": None, "purity": None,
           "n_positives": n_pos, "n_negatives": n_neg}
    if n_pos == 0:
        return {**out, "reason": "insufficient: no validation positive"}
    if n_neg < point.min_negatives:
        return {**out, "reason": (f"insufficient: {n_neg} validation negatives < {point.min_negatives} needed to resolve "
                                  f"FPR {point.max_fpr:.3g}, which purity {point.target_purity:g} at prevalence "
                                  f"{point.prevalence:g} needs even at recall 1")}
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]  # last row of each distinct score, descending
    tpr, fpr = np.cumsum(yy)[last] / n_pos, np.cumsum(~yy)[last] / n_neg
    pur = point.purity(tpr, fpr)
    ok = np.flatnonzero(np.nan_to_num(pur, nan=0.0) >= point.target_purity)
    if not len(ok):
        return {**out, "reason": (f"insufficient: no validation threshold reaches purity {point.target_purity:g} at "
                                  f"prevalence {point.prevalence:g} (highest {np.nanmax(pur):.3g})")}
    j = int(ok[-1])  # the lowest distinct score that reaches the purity
    rates = {"tpr": float(tpr[j]), "fpr": float(fpr[j]), "purity": float(pur[j])}
    if fpr[j] == 0 and point.needed_fpr(tpr[j]) < 1.0 / n_neg:
        return {**out, **rates, "reason": (
            f"insufficient: purity {point.target_purity:g} is reached only with zero validation false positives; "
            f"at validation recall {tpr[j]:.3g} it needs FPR <= {point.needed_fpr(tpr[j]):.3g}, below the split's "
            f"resolution 1/{n_neg} = {1.0 / n_neg:.3g}")}
    t = np.nextafter(ss[last[j] + 1], np.inf) if j + 1 < len(last) else -np.inf
    return {**out, **rates, "logit": float(t), "sufficient": True,
            "reason": (f"smallest logit with validation purity >= {point.target_purity:g} at prevalence "
                       f"{point.prevalence:g}")}


def calibration_errors(probs, labels, n_bins: int = 15) -> tuple[float, float]:
    """(ECE, MCE) with equal-frequency bins."""
    p, y = np.asarray(probs, float), np.asarray(labels, float)
    if len(p) < n_bins:
        raise ValueError(f"calibration needs >= {n_bins} rows, got {len(p)}")
    order = np.argsort(p, kind="stable")
    bins = np.array_split(order, n_bins)
    gaps = np.array([abs(p[b].mean() - y[b].mean()) for b in bins])
    weights = np.array([len(b) for b in bins]) / len(p)
    return float((weights * gaps).sum()), float(gaps.max())


def beta_bounds(k, n, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised interval of Beta(k+1, n-k+1) at ``level``: equal-tailed for 0 < k < n,
    HPD (one-sided) at k = 0 and k = n; n = 0 gives the Beta(1, 1) prior's equal-tailed one."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    a = (1 - level) / 2
    lo, hi = beta_dist.ppf(a, k + 1, n - k + 1), beta_dist.ppf(1 - a, k + 1, n - k + 1)
    at0, atn = (k == 0) & (n > 0), (k == n) & (n > 0)
    lo = np.where(at0, 0.0, np.where(atn, beta_dist.ppf(1 - level, k + 1, n - k + 1), lo))
    hi = np.where(atn, 1.0, np.where(at0, beta_dist.ppf(level, k + 1, n - k + 1), hi))
    return lo, hi


def beta_interval(k: int, n: int, level: float) -> tuple[float, float]:
    """``beta_bounds`` for one proportion (k successes in n); NaN for n <= 0."""
    if n <= 0:
        return float("nan"), float("nan")
    lo, hi = beta_bounds(k, n, level)
    return float(lo), float(hi)


def stratified_bootstrap(metric, scores, labels, n_boot: int = 1000, levels=(0.68, 0.95), seed: int = 0) -> dict:
    """metric(scores, labels) -> float; returns {'value', 'lo68', 'hi68', 'lo95', 'hi95'}.

    Kept on purpose instead of ``scipy.stats.bootstrap`` (which resamples the two classes
    independently as well, ``paired=False``): one set of resamples gives every level, the
    percentiles skip resamples where the metric is undefined (``nanpercentile``: precision
    with nothing selected, ECE of a one-class bin) where scipy's interval would be NaN, and
    the stored evaluations stay reproducible with this seed stream.
    ``test_evaluation_metrics.test_stratified_bootstrap_agrees_with_scipy`` cross-checks the
    intervals against scipy's."""
    s, y = np.asarray(scores, float), np.asarray(labels).astype(int)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if not len(pos) or not len(neg):
        raise ValueError(f"bootstrap needs both classes (positives {len(pos)}, negatives {len(neg)})")
    rng = np.random.default_rng(seed)
    vals = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        vals[i] = metric(s[idx], y[idx])
    out = {"value": float(metric(s, y))}
    for lev in levels:
        a = (1 - lev) / 2 * 100
        lo, hi = np.nanpercentile(vals, [a, 100 - a])
        tag = int(round(lev * 100))
        out[f"lo{tag}"], out[f"hi{tag}"] = float(lo), float(hi)
    return out
