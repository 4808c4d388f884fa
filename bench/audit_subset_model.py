"""Audit a detector trained elsewhere (``bench/train_mock_subset.py`` on a GPU box) on a full home.

The device machine cannot hold a home, so the ``full``-profile detector is trained there on an
exported subset and brought back as TorchScript; this script runs the project's external-finder
audit (``lensaudit.selection.external.audit_detector``: the home's full validation split chooses
the operating thresholds, the full test split is scored, the selection function, brackets,
adversarial tests and failure modes run through the model) with ``--n-per-cell`` injections per
cell (the ``full`` profile's 200 by default) instead of the home's profile value, and prints the
test AUC with its intervals, tier recalls at the primary threshold, the completeness by theta_E
in the best PSF/depth cells, the trends and the wall time of each stage.

Run: PYTHONPATH=. python bench/audit_subset_model.py --home lensaudit_home --spec DIR/resnet18_full.json
     [--n-per-cell 200] [--out DIR] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    from lensaudit.config import RUN_PROFILE_FILE, profile_from_record
    from lensaudit.detector.external import load_external
    from lensaudit.evaluation.report import evaluate
    from lensaudit.evaluation.run import val_scores_path
    from lensaudit.selection.external import audit_detector
    from lensaudit.store import partition_file

    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--n-per-cell", type=int, default=200)
    ap.add_argument("--bracket-per-cell", type=int, default=2,
                    help="injections per cell of each systematics bracket (the profile's default is n/8)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--device", default="cpu")
    ns = ap.parse_args()
    home = Path(ns.home).resolve()
    profile = profile_from_record(json.loads((home / RUN_PROFILE_FILE).read_text()))
    profile = replace(profile, selection=replace(profile.selection, n_per_cell=ns.n_per_cell,
                                                 bracket_per_cell=ns.bracket_per_cell))
    det = load_external(ns.spec, ns.device)
    out = Path(ns.out) if ns.out else home / "external" / f"{det.name}-n{ns.n_per_cell}"
    t0 = time.perf_counter()
    summary = audit_detector(home, profile, det, ns.device, out, provenance={"model": det.describe()})
    wall = time.perf_counter() - t0
    test = pd.read_parquet(partition_file(out, "detector_evaluation", det.name))
    val = pd.read_parquet(val_scores_path(out, det.name))
    rep = evaluate(test["logit"].to_numpy(float), test, val["logit"].to_numpy(float), val["label"].to_numpy(int))
    print(f"home {home} (profile {profile.name}, {ns.n_per_cell} injections per cell); model sha256 {det.model_sha256[:16]}")
    print(f"test split {rep['n_positives']} lenses / {rep['n_negatives']} negatives: AUC {json.dumps(rep['metrics']['roc_auc'])}")
    for t, entry in rep["thresholds"].items():
        if entry.get("sufficient"):
            print(f"{t} (val threshold): recall {json.dumps(entry.get('recall'))}; tier recall {json.dumps(entry.get('tier_recall'))}")
    table = pd.read_csv(out / "assets" / "completeness_table" / "data.csv")
    # the best conditions chosen a priori (not by their own completeness): the two sharpest PSF bins
    # and the two deepest depth bins
    sharp = [int(b) for b in sorted(table["psf_bin"].unique())[:2]]
    deep = [int(b) for b in sorted(table["depth_bin"].unique())[-2:]]
    sub = table[table["psf_bin"].isin(sharp) & table["depth_bin"].isin(deep)]
    by = sub.groupby(["theta_e_lo", "theta_e_hi"]).agg(k=("k", "sum"), n=("n", "sum"))
    print(f"completeness at the primary threshold in psf_bin {sharp} x depth_bin {deep}, by theta_E bin (k/n):",
          ", ".join(f"[{lo:.2f}, {hi:.2f})\": {int(r.k)}/{int(r.n)} = {r.k / r.n:.3f}" for (lo, hi), r in by.iterrows()))
    print(f"injections {summary['injections']}, cells with injections {summary['cells_with_injections']}, "
          f"sufficient {summary['sufficient_cells']}, host false positives {summary['host_false_positive_injections']}")
    print("stage seconds:", json.dumps({k: round(v, 1) for k, v in summary["timings"].items()}), f"total {wall:.0f} s")


if __name__ == "__main__":
    main()
