"""Shortcut gates (DESIGN s3-s4; reference/002 s10.3, s18, s21-22).

Single-feature AUC (positives vs negatives) with a 200-resample stratified bootstrap 68 %
interval per feature; a feature *separates* when its AUC is far from 0.5 either way, so
the gate uses separability s = max(AUC, 1 - AUC) and its interval's lower bound:
yellow (WARN) when any lower bound > 0.60, red (ERROR, not blocking: it is a finding
about the data to report, not a broken pipeline) when > 0.70.  Core-only logistic
regression on the central r < 10 px pixels (train split -> AUC on val): WARN above 0.70.
The numbers are ``lensaudit.spec.DATA``'s (the ``lo68`` columns name the stored interval of
the spec's 68 % level).  The features those gates read are not taken on trust:
``shortcut_features_recomputed`` requires the stored rows to be the cutout index's good
stamps with their labels and splits, and recomputes the features of a sample of them
(``FEATURE_CHECK_ROWS`` evenly spaced, as many drawn with a fresh, recorded seed) from the
stamps, with the producer's own functions and saturation threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensaudit.auc import bootstrap_auc, roc_auc
from lensaudit.gates.gate_spec import GateSpec, StoreView, audit_rng, audit_sample, one_of, schema_gate, spec
from lensaudit.gates.result import ERROR, WARN, GateResult, cannot_compute
from lensaudit.spec import DATA

ASSET = "shortcut_features"


def feature_auc_table(df: pd.DataFrame, features, n_boot: int = DATA.shortcut_n_boot, seed: int = DATA.shortcut_seed,
                      min_per_class: int = DATA.shortcut_min_per_class, level: float = DATA.shortcut_level) -> pd.DataFrame:
    rows = []
    for f in features:
        d = df[["label", f]].dropna()
        pos, neg = d.loc[d.label == 1, f].to_numpy(), d.loc[d.label == 0, f].to_numpy()
        if len(pos) < min_per_class or len(neg) < min_per_class:
            rows.append({"feature": f, "auc": np.nan, "lo68": np.nan, "hi68": np.nan, "separability_lo68": np.nan,
                         "n_pos": len(pos), "n_neg": len(neg)})
            continue
        auc, lo, hi = bootstrap_auc(pos, neg, n_boot=n_boot, level=level, seed=seed)
        sep_lo = lo if auc >= 0.5 else 1 - hi
        rows.append({"feature": f, "auc": auc, "lo68": lo, "hi68": hi, "separability_lo68": sep_lo,
                     "n_pos": len(pos), "n_neg": len(neg)})
    return pd.DataFrame(rows)


def single_feature_gates(table: pd.DataFrame, yellow: float = DATA.shortcut_yellow,
                         red: float = DATA.shortcut_red) -> list[GateResult]:
    out = []
    for name, sev, thr in (("shortcut_single_feature_red", ERROR, red), ("shortcut_single_feature_yellow", WARN, yellow)):
        if table.empty or table["separability_lo68"].isna().all():
            out.append(cannot_compute(name, ASSET, sev, "no feature has enough positives and negatives",
                                      f"lower {DATA.shortcut_level:.0%} bound of max(AUC, 1-AUC) <= {thr}"))
            continue
        worst = table.sort_values("separability_lo68", ascending=False).iloc[0]
        flagged = table.loc[table["separability_lo68"] > thr, "feature"].tolist()
        uncomputed = table.loc[table["separability_lo68"].isna(), "feature"].tolist()
        out.append(GateResult(name, ASSET, not flagged and not uncomputed, sev, float(worst.separability_lo68),
                              f"lower {DATA.shortcut_level:.0%} bound of max(AUC, 1-AUC) <= {thr} for every feature",
                              bound=(None, thr), details={"flagged": flagged, "not_computable": uncomputed, "worst_feature": worst.feature,
                               "table": table.round(4).to_dict(orient="records")}))
    return out


#: the core-only classifier's L2 logistic regression is fitted by Newton steps with a Cholesky solve
#: (scikit-learn's ``newton-cholesky``): ~5 steps reach the optimum that L-BFGS at its default
#: tolerance stops short of after ~400 gradient passes (demo: 1.7 s against 7.4 s on 23,218 x 915
#: float32 pixels; val AUC 0.57267, L-BFGS in float64 at tol 1e-6 0.57271, at its default 0.57239;
#: bench/RESULTS.md, session 23)
CORE_LR_SOLVER = "newton-cholesky"
CORE_LR_MAX_ITER = 100


def core_only_lr_gate(x_train, y_train, x_val, y_val, warn: float = DATA.core_lr_warn,
                      min_per_class: int = DATA.shortcut_min_per_class) -> GateResult:
    name = "shortcut_core_only_lr"
    n = [int((np.asarray(y) == k).sum()) for y in (y_train, y_val) for k in (0, 1)]
    if min(n) < min_per_class:
        return cannot_compute(name, ASSET, WARN, f"too few rows per class (train 0/1, val 0/1 = {n})", f"val AUC <= {warn}")
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    model = LogisticRegression(C=0.1, max_iter=CORE_LR_MAX_ITER, class_weight="balanced",
                               solver=CORE_LR_SOLVER).fit(scaler.transform(x_train), y_train)
    if int(model.n_iter_[0]) >= CORE_LR_MAX_ITER:  # not an optimum: its AUC would be an arbitrary number
        return cannot_compute(name, ASSET, WARN, f"the logistic regression did not converge in {CORE_LR_MAX_ITER} "
                              f"{CORE_LR_SOLVER} steps", f"val AUC <= {warn}")
    s = model.decision_function(scaler.transform(x_val))
    y_val = np.asarray(y_val)
    auc = roc_auc(s[y_val == 1], s[y_val == 0])
    return GateResult(name, ASSET, bool(auc <= warn), WARN, auc, f"val AUC <= {warn}",
                      bound=(None, warn), details={"n_train": int(len(y_train)), "n_val": int(len(y_val)),
                                                   "features": int(np.asarray(x_train).shape[1]),
                                                   "solver": CORE_LR_SOLVER, "solver_iterations": int(model.n_iter_[0])})


FEATURE_CHECK_ROWS = 64  # evenly spaced stamps whose features are recomputed (and as many drawn at random)
FEATURE_RTOL, FEATURE_ATOL = 1e-6, 1e-9  # the same float64 reductions, possibly in other blocks


def features_recomputed(stored: pd.DataFrame, index: pd.DataFrame, reader, rng: np.random.Generator,
                        n_rows: int = FEATURE_CHECK_ROWS) -> GateResult:
    """The stored shortcut features are the index's ``cutout_ok`` rows (one each, with the
    index's label and split) and, on a sample of them, equal features recomputed from the
    stamps (``cutouts.features.features_table`` at ``store_saturation_threshold``)."""
    from lensaudit.cutouts.features import FEATURES, features_table, store_saturation_threshold

    name, threshold = "shortcut_features_recomputed", "0 rows not the index's, 0 sampled features off their stamps"
    ok = index[index["cutout_ok"].astype(bool)].drop_duplicates("galaxy_id").set_index("galaxy_id")
    if stored.empty or ok.empty:
        return cannot_compute(name, ASSET, ERROR, "no stored features or no good stamps", threshold)
    st = stored.drop_duplicates("galaxy_id").set_index("galaxy_id")
    missing, extra = ok.index.difference(st.index), st.index.difference(ok.index)
    both = st.index.intersection(ok.index)
    relabelled = both[(st.loc[both, "label"].to_numpy() != ok.loc[both, "label"].to_numpy())
                      | (st.loc[both, "split"].astype(str).to_numpy() != ok.loc[both, "split"].astype(str).to_numpy())]
    dup = int(stored["galaxy_id"].duplicated().sum())
    ids = np.sort(both.to_numpy().astype(str))
    sample = ids[audit_sample(len(ids), n_rows, rng)]
    rows = ok.loc[sample].reset_index()
    got = features_table(reader.read(rows.assign(cutout_ok=True)), store_saturation_threshold(index, reader))
    want = st.loc[sample, list(FEATURES)].to_numpy(float)
    g = got[list(FEATURES)].to_numpy(float)
    close = np.isclose(g, want, rtol=FEATURE_RTOL, atol=FEATURE_ATOL, equal_nan=True)
    off = sample[~close.all(axis=1)]
    n_bad = len(missing) + len(extra) + len(relabelled) + dup + len(off)
    return GateResult(name, ASSET, n_bad == 0, ERROR, float(n_bad), threshold, bound=(None, 0.0), details={
        "rows": int(len(stored)), "good_stamps": int(len(ok)), "missing": int(len(missing)), "not_good_stamps": int(len(extra)),
        "label_or_split_not_the_index": int(len(relabelled)), "duplicates": dup, "recomputed": int(len(sample)),
        "recomputed_off": int(len(off)), "examples": [*map(str, missing[:3]), *map(str, extra[:3]),
                                                      *map(str, relabelled[:3]), *map(str, off[:3])]})


def _features_recomputed(v: StoreView) -> GateResult:
    from lensaudit.cutouts.store import CutoutReader

    rng, seed = audit_rng()
    res = features_recomputed(v.table(ASSET), v.table("cutouts"), CutoutReader(v.home / "cutout_store"), rng)
    res.details["random_sample_seed"] = seed
    return res


def _single_feature(v: StoreView, name: str) -> GateResult:
    """The single-feature AUC table is computed once per view for both gates."""
    from lensaudit.cutouts.features import FEATURES

    table = v.memo("shortcut_auc_table", lambda: feature_auc_table(v.table("shortcut_features"), FEATURES))
    return one_of(single_feature_gates(table, DATA.shortcut_yellow, DATA.shortcut_red), name)


def core_lr_inputs(v: StoreView) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split ("train", "val") -> (core pixels, labels) of the home's good stamps that the core-only
    classifier fits and scores (each split evenly thinned to ``core_lr_max_rows``)."""
    from lensaudit.cutouts.features import core_pixels, core_window
    from lensaudit.cutouts.store import CutoutReader

    index = v.table("cutouts")
    ok = index[index["cutout_ok"]].sort_values("galaxy_id")
    reader = CutoutReader(v.home / "cutout_store")
    parts = {}
    for split in ("train", "val"):
        rows = ok[ok["split"] == split]
        step = max(1, len(rows) // v.profile.core_lr_max_rows)
        rows = rows.iloc[::step]
        pixels = core_pixels(reader.read(rows, window=core_window(reader.size))) if len(rows) else np.zeros((0, 1))
        parts[split] = (pixels, rows["label"].to_numpy())
    return parts


def _core_lr(v: StoreView) -> GateResult:
    parts = core_lr_inputs(v)
    return core_only_lr_gate(*parts["train"], *parts["val"], warn=DATA.core_lr_warn)


def specs() -> list[GateSpec]:
    """GateSpecs of this family (concatenated by ``lensaudit.gates.registry``)."""
    level = f"{DATA.shortcut_level:.0%}"
    return [
        schema_gate(ASSET),
        spec("shortcut_single_feature_red", ASSET, ERROR, False,
             f"no single feature separates positives from negatives ({level} lower bound of max(AUC,1-AUC) "
             f"<= {DATA.shortcut_red})",
             lambda v: _single_feature(v, "shortcut_single_feature_red"), plot="shortcut_feature_auc.png"),
        spec("shortcut_single_feature_yellow", ASSET, WARN, False,
             f"no single feature flags ({level} lower bound of max(AUC,1-AUC) <= {DATA.shortcut_yellow})",
             lambda v: _single_feature(v, "shortcut_single_feature_yellow"), plot="shortcut_feature_auc.png"),
        spec("shortcut_features_recomputed", ASSET, ERROR, True,
             f"the stored features are the cutout index's good stamps with their labels and splits; those of "
             f"{2 * FEATURE_CHECK_ROWS} stamps ({FEATURE_CHECK_ROWS} evenly spaced, as many at random) recomputed from "
             "the stamps equal them", _features_recomputed),
        spec("shortcut_core_only_lr", ASSET, WARN, False,
             f"logistic regression on the central r < 10 px pixels: val AUC <= {DATA.core_lr_warn}", _core_lr),
    ]
