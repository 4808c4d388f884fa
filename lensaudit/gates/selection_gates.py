"""Gates of the selection function: host split, the completeness table's integrity."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensaudit.gates.gate_spec import GateSpec, StoreView, spec
from lensaudit.gates.result import ERROR, WARN, GateResult, cannot_compute
from lensaudit.evaluation.metrics import beta_bounds
from lensaudit.selection.completeness import detections
from lensaudit.spec import INTERVAL_LEVELS, PRIMARY, SELECTION, interval_tag
from lensaudit.selection.grid import N_CELLS
from lensaudit.selection.hosts import host_leaks


def hosts_held_out(hosts: pd.DataFrame, manifest: pd.DataFrame) -> GateResult:
    """Every host is a test-split negative outside every train/val HEALPix pixel (blocking)."""
    name = "injection_hosts_held_out"
    if hosts.empty:
        return cannot_compute(name, "injection_hosts", ERROR, "no hosts", "0 leaked hosts")
    leaks = host_leaks(hosts, manifest)
    n_bad = len(set(leaks["not_in_test_split"]) | set(leaks["positives"]) | set(leaks["in_train_or_val_pixel"]))
    return GateResult(name, "injection_hosts", n_bad == 0, ERROR, float(n_bad), "0 hosts from train/val or positives",
                      bound=(None, 0.0), details={k: (v[:10] if isinstance(v, list) else v) for k, v in leaks.items()})


def host_bins_populated(bins: pd.DataFrame) -> GateResult:
    """Flags (PSF, depth) bins with too few distinct hosts (WARN: the cells are reported, not filled)."""
    name = "injection_host_bins_populated"
    thin = bins[bins["too_few"]]
    return GateResult(name, "injection_hosts", thin.empty, WARN, float(len(thin)), "0 thin (PSF, depth) bins",
                      bound=(None, 0.0), details={"thin_bins": thin[["psf_lo", "psf_hi", "depth_lo", "depth_hi", "n_hosts"]].to_dict("records")[:40],
                       "bins": int(len(bins))})


def completeness_table_valid(table: pd.DataFrame, injections: pd.DataFrame, threshold_logit: float | None) -> GateResult:
    """385 cells; the table's threshold is the operating threshold recomputed from the
    validation scores; n, k and n_host_fp agree with the per-injection table under the
    detection rule (injected crosses, host does not); intervals are ``beta_bounds``;
    ``sufficient`` is n >= the spec's 200."""
    name = "completeness_table_valid"
    if table.empty:
        return cannot_compute(name, "completeness_table", ERROR, "empty table", f"{N_CELLS} valid cells")
    if threshold_logit is None:
        return cannot_compute(name, "completeness_table", ERROR, "no operating threshold from the validation scores",
                              f"{N_CELLS} valid cells")
    problems = {}
    if len(table) != N_CELLS or table["cell"].nunique() != N_CELLS:
        problems["cells"] = f"{len(table)} rows, {table['cell'].nunique()} distinct cells"
    stored_thr = float(table["threshold_logit"].iloc[0])
    if not np.isclose(stored_thr, threshold_logit, rtol=0, atol=1e-9):
        problems["threshold"] = f"table threshold {stored_thr:.6g} != validation-split threshold {threshold_logit:.6g}"
    det, host_fp = detections(injections, threshold_logit)
    cnt = pd.DataFrame({"cell": injections["cell"].to_numpy(int), "n": ~host_fp, "k": det, "fp": host_fp}
                       ).groupby("cell").sum()
    t = table.set_index("cell")
    got = cnt.reindex(t.index, fill_value=0)
    for col, stored in (("n", "n"), ("k", "k"), ("fp", "n_host_fp")):
        if stored not in t or not (got[col].to_numpy() == t[stored].to_numpy()).all():
            problems[f"counts_{stored}"] = f"{stored} differs from the per-injection table"
    for level in INTERVAL_LEVELS:
        tag = interval_tag(level)
        lo, hi = beta_bounds(t["k"], t["n"], level)
        if not (np.allclose(lo, t[f"lo{tag}"], atol=1e-9) and np.allclose(hi, t[f"hi{tag}"], atol=1e-9)):
            problems[f"interval{tag}"] = "differs from the Beta(k+1, n-k+1) interval"
    if not (t["sufficient"] == (t["n"] >= SELECTION.sufficient_n)).all():
        problems["sufficient"] = f"not n >= {SELECTION.sufficient_n}"
    return GateResult(name, "completeness_table", not problems, ERROR, float(len(problems)), "0 problems",
                      bound=(None, 0.0), details={"problems": problems, "cells_with_injections": int((t["n"] > 0).sum()),
                       "sufficient_cells": int(t["sufficient"].sum()), "injections": int(len(injections)),
                       "host_false_positive_injections": int(host_fp.sum()), "threshold_logit": threshold_logit})


def operating_threshold(v: StoreView) -> float | None:
    """The primary operating threshold recomputed from the stored validation scores (the
    spec's FPR, ``lensaudit.spec.PRIMARY``), never read from a producer's summary."""
    from lensaudit.evaluation.operating import operating_thresholds, threshold_logit
    from lensaudit.evaluation.run import val_scores

    def compute():
        val = val_scores(v.home, v.profile.detector.audit_arch)
        return threshold_logit(operating_thresholds(val["logit"].to_numpy(float), val["label"].to_numpy(int)), PRIMARY)
    return v.memo("operating_threshold", compute)


def operating_point_text() -> str:
    """The operating threshold as the gate descriptions name it."""
    return f"the validation-split FPR-{PRIMARY.target_fpr:g} threshold"


def specs() -> list[GateSpec]:
    """GateSpecs of this family (concatenated by ``lensaudit.gates.registry``)."""
    return [
        spec("injection_hosts_held_out", "injection_hosts", ERROR, True,
             "hosts are test-split negatives only (no train/val row or pixel, no positive)",
             lambda v: hosts_held_out(v.table("injection_hosts"), v.table("training_manifest"))),
        spec("injection_host_bins_populated", "injection_hosts", WARN, False,
             "every (PSF, depth) bin holds enough distinct hosts",
             lambda v: host_bins_populated(v.table("injection_host_bins"))),
        spec("completeness_table_valid", "completeness_table", ERROR, True,
             f"{N_CELLS} cells at {operating_point_text()} (recomputed from the validation scores), counts match the "
             f"injections under the detection rule, Beta intervals, sufficient = n >= {SELECTION.sufficient_n}",
             lambda v: completeness_table_valid(v.table("completeness_table"), v.table("completeness_injections"),
                                                operating_threshold(v)),
             plot="completeness_heatmaps.png"),
    ]
