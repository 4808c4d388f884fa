"""Gates of the selection function: host split, the completeness table's integrity."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensaudit.gates.result import ERROR, WARN, GateResult, cannot_compute
from lensaudit.evaluation.metrics import beta_bounds
from lensaudit.selection.completeness import SUFFICIENT_N
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
                      {k: (v[:10] if isinstance(v, list) else v) for k, v in leaks.items()})


def host_bins_populated(bins: pd.DataFrame) -> GateResult:
    """Flags (PSF, depth) bins with too few distinct hosts (WARN: the cells are reported, not filled)."""
    name = "injection_host_bins_populated"
    thin = bins[bins["too_few"]]
    return GateResult(name, "injection_hosts", thin.empty, WARN, float(len(thin)), "0 thin (PSF, depth) bins",
                      {"thin_bins": thin[["psf_lo", "psf_hi", "depth_lo", "depth_hi", "n_hosts"]].to_dict("records")[:40],
                       "bins": int(len(bins))})


def completeness_table_valid(table: pd.DataFrame, injections: pd.DataFrame) -> GateResult:
    """385 cells; n and k agree with the per-injection table; intervals are the Beta ones;
    ``sufficient`` is n >= 200."""
    name = "completeness_table_valid"
    if table.empty:
        return cannot_compute(name, "completeness_table", ERROR, "empty table", f"{N_CELLS} valid cells")
    problems = {}
    if len(table) != N_CELLS or table["cell"].nunique() != N_CELLS:
        problems["cells"] = f"{len(table)} rows, {table['cell'].nunique()} distinct cells"
    thr = float(table["threshold_logit"].iloc[0])
    cnt = injections.groupby("cell").agg(n=("logit", "size"), k=("logit", lambda v: int((v >= thr).sum())))
    t = table.set_index("cell")
    got = cnt.reindex(t.index, fill_value=0)
    if not (got["n"].to_numpy() == t["n"].to_numpy()).all() or not (got["k"].to_numpy() == t["k"].to_numpy()).all():
        problems["counts"] = "n/k differ from the per-injection table"
    for level, tag in ((0.68, "68"), (0.95, "95")):
        lo, hi = beta_bounds(t["k"], t["n"], level)
        if not (np.allclose(lo, t[f"lo{tag}"], atol=1e-9) and np.allclose(hi, t[f"hi{tag}"], atol=1e-9)):
            problems[f"interval{tag}"] = "differs from Beta(k+1, n-k+1)"
    if not (t["sufficient"] == (t["n"] >= SUFFICIENT_N)).all():
        problems["sufficient"] = f"not n >= {SUFFICIENT_N}"
    return GateResult(name, "completeness_table", not problems, ERROR, float(len(problems)), "0 problems",
                      {"problems": problems, "cells_with_injections": int((t["n"] > 0).sum()),
                       "sufficient_cells": int(t["sufficient"].sum()), "injections": int(len(injections))})
