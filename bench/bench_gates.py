"""Benchmark: every gate of the registry on a finished home, slowest first; the QC
recomputation and shard-hash gates on one thread (the reference) against ``QC_THREADS`` in the
same run; the shortcut gates' single-feature AUC table with each bootstrap resample re-ranked (the
first implementation, the reference) against ``auc.bootstrap_auc``'s counting; the core-only
classifier's reads of whole stamps (the reference) against its ``core_window``, and its fit by
L-BFGS at scikit-learn's default tolerance (sessions 1-22, the reference) against
``CORE_LR_SOLVER``.

Run: PYTHONPATH=. python bench/bench_gates.py --home lensaudit_home [--profile demo]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path


def main() -> None:
    from lensaudit.config import get_profile
    from lensaudit.gates import integrity_gates
    from lensaudit.gates.registry import GATES, StoreView

    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--profile", default="demo")
    ns = ap.parse_args()
    view = StoreView(Path(ns.home), get_profile(ns.profile))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; home {ns.home}")
    times = []
    for g in GATES:
        t0 = time.perf_counter()
        res = g.evaluate(view)
        times.append((time.perf_counter() - t0, g.name, res.passed))
    times.sort(reverse=True)
    print(f"all {len(times)} gates: {sum(t for t, _, _ in times):.1f} s; slowest:")
    for t, name, passed in times[:6]:
        print(f"  {t:6.2f} s  {name}  {'PASS' if passed else 'FAIL'}")
    qc = next(g for g in GATES if g.name == "cutout_qc_recomputed")
    sha = next(g for g in GATES if g.name == "cutout_shards_match_content_hash")
    for threads in (1, integrity_gates.QC_THREADS):
        integrity_gates.QC_THREADS = threads
        t0 = time.perf_counter()
        res = qc.evaluate(view)
        print(f"cutout_qc_recomputed, QC_THREADS={threads}: {time.perf_counter() - t0:.2f} s "
              f"(rows {res.details['rows_checked']}, mismatched {res.details['mismatched']})")
        t0 = time.perf_counter()
        res = sha.evaluate(view)
        print(f"cutout_shards_match_content_hash, QC_THREADS={threads}: {time.perf_counter() - t0:.2f} s "
              f"(shards {res.details['shards']}, mismatched {res.details['mismatched']})")
    shortcut_parts(view)


def shortcut_parts(view) -> None:
    import numpy as np

    from lensaudit.cutouts.features import FEATURES, core_pixels, core_window
    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.gates import shortcut_gates
    from lensaudit_tests.test_cutout_store_features import bootstrap_auc_per_resample

    df = view.table("shortcut_features")
    counted = shortcut_gates.bootstrap_auc
    tables = {}
    for label, fn in (("each resample re-ranked (reference)", bootstrap_auc_per_resample),
                      ("counted (bootstrap_auc)", counted)):
        shortcut_gates.bootstrap_auc = fn
        t0 = time.perf_counter()
        tables[label] = shortcut_gates.feature_auc_table(df, FEATURES)
        print(f"single-feature AUC table ({len(FEATURES)} features x {shortcut_gates.DATA.shortcut_n_boot} resamples, "
              f"{len(df)} rows), {label}: {time.perf_counter() - t0:.2f} s")
    shortcut_gates.bootstrap_auc = counted
    a, b = tables.values()
    print(f"  tables equal: {a.equals(b)}")
    index = view.table("cutouts")
    rows = index[index["cutout_ok"] & (index["split"] == "train")].sort_values("galaxy_id")
    reader = CutoutReader(view.home / "cutout_store")
    got = {}
    for label, window in (("whole stamps (reference)", None), ("core_window", core_window(reader.size))):
        t0 = time.perf_counter()
        got[label] = core_pixels(reader.read(rows, window=window))
        print(f"core-only classifier's pixels of {len(rows)} training stamps, {label}: {time.perf_counter() - t0:.2f} s")
    a, b = got.values()
    print(f"  pixels equal: {np.array_equal(a, b)}")
    core_lr_fits(view)


def core_lr_fits(view) -> None:
    """The core-only classifier's fit on the gate's rows: L-BFGS (the reference) against the gate's solver."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from lensaudit.auc import roc_auc
    from lensaudit.gates import shortcut_gates

    data = shortcut_gates.core_lr_inputs(view)
    (xt, yt), (xv, yv) = data["train"], data["val"]
    scaler = StandardScaler().fit(xt)
    xt, xv = scaler.transform(xt), scaler.transform(xv)
    for label, kw in (("L-BFGS, default tolerance (reference)", {"max_iter": 2000}),
                      (f"{shortcut_gates.CORE_LR_SOLVER} (the gate's)",
                       {"solver": shortcut_gates.CORE_LR_SOLVER, "max_iter": shortcut_gates.CORE_LR_MAX_ITER}),
                      ("L-BFGS, tol 1e-6", {"max_iter": 5000, "tol": 1e-6})):
        t0 = time.perf_counter()
        m = LogisticRegression(C=0.1, class_weight="balanced", **kw).fit(xt, yt)
        s = m.decision_function(xv)
        print(f"core-only classifier fit ({xt.shape[0]} x {xt.shape[1]} {xt.dtype}), {label}: "
              f"{time.perf_counter() - t0:.2f} s, {int(m.n_iter_[0])} iterations, val AUC {roc_auc(s[yv == 1], s[yv == 0]):.6f}")


if __name__ == "__main__":
    main()
