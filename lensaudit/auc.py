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
    """(auc, lo, hi)."""
    p = np.asarray(scores_pos, dtype=np.float64)
    n = np.asarray(scores_neg, dtype=np.float64)
    auc = roc_auc(p, n)
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        boots[i] = roc_auc(p[rng.integers(0, len(p), len(p))], n[rng.integers(0, len(n), len(n))])
    a = (1 - level) / 2 * 100
    lo, hi = np.percentile(boots, [a, 100 - a])
    return auc, float(lo), float(hi)
