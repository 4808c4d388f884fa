"""Per-cell completeness with Beta intervals and the detectability decomposition.

For each of the 385 cells and one score threshold: n injections, k detected (logit >=
threshold), C = k/n, equal-tailed 68 % and 95 % intervals of Beta(k+1, n-k+1) (uniform
prior; for n = 0 that is the prior, Beta(1, 1), and C is NaN), ``sufficient = n >= 200``;
no smoothing.  Decomposition: n_observable (``detectability.observable``), the observable
fraction with Beta(n_obs+1, n-n_obs+1) intervals and the conditional recall k_obs/n_obs
with Beta(k_obs+1, n_obs-k_obs+1) intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lensaudit.evaluation.metrics import beta_bounds
from lensaudit.selection.grid import cells

SCHEMA_VERSION = 1
SUFFICIENT_N = 200


def _with_intervals(df: pd.DataFrame, k: str, n: str, value: str, prefix: str = "") -> None:
    with np.errstate(invalid="ignore", divide="ignore"):
        df[value] = np.where(df[n] > 0, df[k] / df[n].where(df[n] > 0, 1), np.nan)
    for level, tag in ((0.68, "68"), (0.95, "95")):
        lo, hi = beta_bounds(df[k], df[n], level)
        df[f"{prefix}lo{tag}"], df[f"{prefix}hi{tag}"] = lo, hi


def completeness_table(records: pd.DataFrame, threshold_logit: float, threshold_name: str) -> pd.DataFrame:
    """385 rows.  ``records``: one row per injection with ``cell``, ``logit``, ``observable``."""
    det = records["logit"].to_numpy(float) >= threshold_logit
    obs = records["observable"].to_numpy(bool)
    agg = pd.DataFrame({"cell": records["cell"].to_numpy(int), "det": det, "obs": obs, "det_obs": det & obs})
    g = agg.groupby("cell").agg(n=("det", "size"), k=("det", "sum"), n_observable=("obs", "sum"),
                                k_observable=("det_obs", "sum"))
    t = cells().merge(g, left_on="cell", right_index=True, how="left")
    for c in ("n", "k", "n_observable", "k_observable"):
        t[c] = t[c].fillna(0).astype(np.int64)
    _with_intervals(t, "k", "n", "completeness")
    t["sufficient"] = t["n"] >= SUFFICIENT_N
    _with_intervals(t, "n_observable", "n", "observable_fraction", "observable_")
    _with_intervals(t, "k_observable", "n_observable", "conditional_recall", "conditional_")
    t["threshold_name"] = threshold_name
    t["threshold_logit"] = float(threshold_logit)
    t["threshold_probability"] = float(1 / (1 + np.exp(-threshold_logit)))
    t["schema_version"] = SCHEMA_VERSION
    return t


def marginal(table: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Completeness summed over the other two axes (n, k pooled), with Beta intervals."""
    lo, hi = f"{axis}_lo", f"{axis}_hi"
    m = table.groupby([lo, hi], as_index=False)[["n", "k"]].sum()
    _with_intervals(m, "k", "n", "completeness")
    return m
