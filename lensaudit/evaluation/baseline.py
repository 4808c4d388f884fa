"""The trivial baseline a CNN must beat: logistic regression on the shortcut features.

Trained on the train split's ``shortcut_features`` (standardised, L2, class-balanced
weights), applied to the test rows the detector was scored on.  If the CNN does no
better than this, it is reading the core brightness / colour shortcuts, not arcs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensaudit.cutouts.features import FEATURES
from lensaudit.auc import roc_auc


def shortcut_lr_scores(features: pd.DataFrame, test_ids: pd.Series, seed: int = 0) -> np.ndarray:
    """Decision-function scores of the baseline for ``test_ids`` (in their order)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cols = list(FEATURES)
    tr = features[features["split"] == "train"]
    x_tr = tr[cols].to_numpy(float)
    keep = np.isfinite(x_tr).all(axis=1)
    y_tr = tr["label"].to_numpy(int)[keep]
    if len(set(y_tr)) < 2:
        raise ValueError("the baseline needs both classes in the train split's shortcut features")
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed))
    model.fit(x_tr[keep], y_tr)
    if len(test_ids) == 0:  # e.g. an empty validation split: nothing to score (thresholds then insufficient)
        return np.zeros(0)
    te = features.set_index("galaxy_id").reindex(test_ids)
    if te[cols].isna().all(axis=1).any():
        missing = int(te[cols].isna().all(axis=1).sum())
        raise ValueError(f"{missing} scored test rows have no shortcut features")
    x_te = np.nan_to_num(te[cols].to_numpy(float), nan=0.0)
    return model.decision_function(x_te)


def baseline_summary(scores: np.ndarray, meta: pd.DataFrame, val_scores, val_labels, n_boot: int, seed: int) -> dict:
    """AUC with bootstrap intervals; tier-A and tier-B recall (Beta intervals) on the test rows
    at the baseline's own operating thresholds, chosen on its validation scores exactly as the
    CNN's are (``evaluation.operating``)."""
    from lensaudit.evaluation.operating import operating_thresholds
    from lensaudit.evaluation.report import beta_metric, bootstrap_metric, null_metric

    s = np.asarray(scores, float)
    y = meta["label"].to_numpy().astype(int)
    tiers = meta["tier"].to_numpy()
    out = {"model": "logistic regression on the shortcut features (standardised, class-balanced)",
           "features": list(FEATURES),
           "metrics": {"roc_auc": bootstrap_metric(lambda a, b: roc_auc(a[b == 1], a[b == 0]), s, y, n_boot, seed)},
           "thresholds": {}}
    for name, op in operating_thresholds(val_scores, val_labels).items():
        t = op["logit"]
        if not op["sufficient"]:
            out["thresholds"][name] = {"sufficient": False, "recall": null_metric(op["definition"])}
            continue
        out["thresholds"][name] = {"sufficient": True, "tier_recall": {
            tier: beta_metric(int((s[(y == 1) & (tiers == tier)] >= t).sum()), int(((y == 1) & (tiers == tier)).sum()))
            for tier in ("A", "B")}}
    return out
