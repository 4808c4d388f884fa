"""Operating thresholds of the detector, chosen on the **validation** split (DESIGN s3
"Evaluation"): for each ``lensaudit.spec.OPERATING_POINTS`` entry, the smallest logit t
with FPR(score >= t) <= target on the validation negatives (``metrics.threshold_at_fpr``),
*insufficient* when the validation split holds fewer than 1/target negatives.  Beside them,
the fixed-purity points of ``lensaudit.spec.PURITY_POINTS`` (``purity_thresholds``): the
smallest logit whose prevalence-weighted validation purity reaches the target, insufficient
where the validation negatives cannot resolve the FPR that purity needs.

The test split then measures recall / precision / FPR at these fixed thresholds, and the
selection function (whose hosts are test negatives) uses them: a threshold is never set
on the rows it is then judged on.
"""

from __future__ import annotations

import numpy as np

from lensaudit.evaluation.metrics import threshold_at_fpr, threshold_at_purity
from lensaudit.spec import OPERATING_POINTS, PURITY_POINTS, OperatingPoint, PurityPoint


def operating_thresholds(val_logits, val_labels, points: tuple[OperatingPoint, ...] = OPERATING_POINTS) -> dict:
    """{point name: {target_fpr, logit (None when insufficient), sufficient, n_val_negatives,
    val_fpr (achieved on val), definition}}."""
    s, y = np.asarray(val_logits, float), np.asarray(val_labels).astype(bool)
    n_neg = int((~y).sum())
    out = {}
    for p in points:
        t, ok = threshold_at_fpr(s, y, p.target_fpr)
        out[p.name] = {
            "target_fpr": p.target_fpr, "logit": float(t) if ok else None, "sufficient": bool(ok),
            "n_val_negatives": n_neg, "val_fpr": float((s[~y] >= t).mean()) if ok else None,
            "definition": (f"smallest logit with validation FPR <= {p.target_fpr:g}" if ok else
                           f"insufficient: {n_neg} validation negatives < {p.min_negatives} needed for FPR {p.target_fpr:g}"),
        }
    return out


def purity_thresholds(val_logits, val_labels, points: tuple[PurityPoint, ...] = PURITY_POINTS) -> dict:
    """{point name: {target_purity, prevalence, logit (None when insufficient), sufficient,
    n_val_positives, n_val_negatives, val_recall, val_fpr, val_purity, definition}}."""
    out = {}
    for p in points:
        r = threshold_at_purity(val_logits, val_labels, p)
        out[p.name] = {
            "target_purity": p.target_purity, "prevalence": p.prevalence, "max_fpr_needed": p.max_fpr,
            "logit": r["logit"] if r["sufficient"] else None, "sufficient": r["sufficient"],
            "n_val_positives": r["n_positives"], "n_val_negatives": r["n_negatives"],
            "val_recall": r["tpr"], "val_fpr": r["fpr"], "val_purity": r["purity"], "definition": r["reason"],
        }
    return out


def threshold_logit(thresholds: dict, point: OperatingPoint) -> float | None:
    """The logit of ``point`` in an ``operating_thresholds`` dict, None when insufficient or absent."""
    t = thresholds.get(point.name) or {}
    return float(t["logit"]) if t.get("sufficient") and t.get("logit") is not None else None
