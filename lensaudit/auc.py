"""ROC AUC and its stratified bootstrap interval (shared by the shortcut gates, the detector
evaluation and the integrity gates that recompute it).

AUC = P(score_pos > score_neg) + 0.5 P(tie) (Mann-Whitney U / (n_pos n_neg), ranks with
ties averaged).  Bootstrap: positives and negatives are resampled separately (stratified)
``n_boot`` times with a fixed seed; the interval is the equal-tailed percentile one.

Kept on purpose instead of ``sklearn.metrics.roc_auc_score``: the interval bootstraps call it
thousands of times on two already separated classes, where one ``rankdata`` is all that is
needed (no label array, no curve).  ``test_cutout_store_features.test_auc_against_sklearn_and_hand_cases``
cross-checks it against scikit-learn, ties included.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def roc_auc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    p = np.asarray(scores_pos, dtype=np.float64)
    n = np.asarray(scores_neg, dtype=np.float64)
    if len(p) == 0 or len(n) == 0:
        raise ValueError(f"AUC needs both classes (positives {len(p)}, negatives {len(n)})")
    ranks = rankdata(np.concatenate([p, n]))
    u = ranks[: len(p)].sum() - len(p) * (len(p) + 1) / 2
    return float(u / (len(p) * len(n)))


def bootstrap_auc(scores_pos, scores_neg, n_boot: int = 200, level: float = 0.68, seed: int = 0) -> tuple[float, float, float]:
    """(auc, lo, hi).

    Each resample's AUC is counted, not re-ranked: with the negatives sorted once, a resample's
    U = sum over resampled positives of (resampled negatives below it + 0.5 x those tied with it),
    i.e. the negatives' resample counts (``bincount``) cumulated in sorted order and read at each
    positive's ``searchsorted`` bounds -- O(n) per resample instead of a sort.  The same resample
    indices (the same generator calls, positives then negatives) and the same U (integers and
    halves, exact in float64) as ``roc_auc`` on each resample, so the same interval to the last
    bit (``test_cutout_store_features`` checks it against the per-resample ``roc_auc``).  A NaN
    score makes everything NaN, as ``roc_auc``'s ranks do."""
    p = np.asarray(scores_pos, dtype=np.float64)
    n = np.asarray(scores_neg, dtype=np.float64)
    auc = roc_auc(p, n)
    if np.isnan(p).any() or np.isnan(n).any():
        return float("nan"), float("nan"), float("nan")
    order = np.argsort(n, kind="stable")
    n_sorted = n[order]
    below = np.searchsorted(n_sorted, p, side="left")  # negatives < p_i: sorted positions [0, below)
    upto = np.searchsorted(n_sorted, p, side="right")  # negatives <= p_i
    rank_of = np.empty(len(n), dtype=np.int64)
    rank_of[order] = np.arange(len(n))  # position of negative j in the sorted order
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    cum = np.zeros(len(n) + 1)
    for i in range(n_boot):
        ip = rng.integers(0, len(p), len(p))
        jn = rng.integers(0, len(n), len(n))
        np.cumsum(np.bincount(rank_of[jn], minlength=len(n)), out=cum[1:])
        u = (cum[below[ip]] + 0.5 * (cum[upto[ip]] - cum[below[ip]])).sum()
        boots[i] = u / (len(p) * len(n))
    a = (1 - level) / 2 * 100
    lo, hi = np.percentile(boots, [a, 100 - a])
    return auc, float(lo), float(hi)
