"""The headline figures of a lensaudit home, computed from what is stored (``lensaudit summary``).

The README's demo figures are pasted from this command's Markdown output at a named commit,
so no number in the README is typed by hand.  Every figure is recomputed from the stored
tables (scored test rows, validation scores, per-injection records), not read from a summary.
"""

from __future__ import annotations

import json
from pathlib import Path

from lensaudit import provenance
from lensaudit.config import Profile
from lensaudit.auc import roc_auc
from lensaudit.evaluation.metrics import beta_interval
from lensaudit.evaluation.operating import operating_thresholds, threshold_logit
from lensaudit.spec import PRIMARY
from lensaudit.tables import read_table

#: the figures ``summary`` reports (a test checks that each one is produced)
FIELDS = ("commit", "profile", "data_source", "test_lenses", "test_negatives", "test_auc", "test_auc_lo95",
          "baseline_auc", "tier_a_recall_fpr0.01", "injections", "host_fp_injections", "detected_fpr0.01",
          "completeness_theta_lt_1", "completeness_theta_ge_2_best_cells", "cells_with_hosts", "gates_error_failed",
          "gates_warn_failed")


def _short(commit: str) -> str:
    """``<sha>[+dirty]`` as 7 hex digits and its suffix."""
    sha, plus, rest = str(commit).partition("+")
    return sha[:7] + plus + rest


def _commit_of(built: str | None) -> str:
    """The commit the home's detector evaluation was built at, and the summarising code's
    commit when it differs (a summary of an older home says so)."""
    now = _short(provenance.git_commit())
    if not built:
        return f"unknown (summarised at {now})"
    built = _short(built)
    return built if built == now else f"{built} (summarised at {now})"


def _fmt_prop(k: int, n: int) -> str:
    if n == 0:
        return "n/a (n = 0)"
    lo, hi = beta_interval(k, n, 0.95)
    return f"{k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}]"


def summarise(home: Path, profile: Profile) -> dict:
    """{field: value-as-text} for the fields of ``FIELDS`` that the home can answer ("n/a" else)."""
    from lensaudit.evaluation.run import report_json, scored_rows, val_scores
    from lensaudit.gates.registry import StoreView, evaluate_all

    arch = profile.detector.audit_arch
    out = {k: "n/a" for k in FIELDS}
    out["commit"], out["profile"] = _commit_of(None), profile.name
    stored = home / "run_profile.json"
    src = json.loads(stored.read_text()).get("data_source") if stored.is_file() else None
    out["data_source"] = src or data_source_of(home)
    t = None
    try:
        test, val = scored_rows(home, arch), val_scores(home, arch)
        y, s = test["label"].to_numpy(int), test["logit"].to_numpy(float)
        rep = report_json(home, arch)
        out["commit"] = _commit_of(rep.get("git_commit"))
        auc = rep["metrics"]["roc_auc"]
        out["test_lenses"], out["test_negatives"] = str(int(y.sum())), str(int((y == 0).sum()))
        out["test_auc"] = f"{roc_auc(s[y == 1], s[y == 0]):.3f} [{auc['lo95']:.3f}, {auc['hi95']:.3f}]"
        out["test_auc_lo95"] = f"{auc['lo95']:.3f}"
        out["baseline_auc"] = "{value:.3f} [{lo95:.3f}, {hi95:.3f}]".format(**rep["baseline_shortcut_lr"]["metrics"]["roc_auc"])
        ops = operating_thresholds(val["logit"].to_numpy(float), val["label"].to_numpy(int))
        t = threshold_logit(ops, PRIMARY)
        if t is not None:
            a = (y == 1) & (test["tier"].to_numpy() == "A")
            out[f"tier_a_recall_{PRIMARY.name}"] = _fmt_prop(int((s[a] >= t).sum()), int(a.sum()))
    except (FileNotFoundError, KeyError, ValueError):
        pass
    try:
        inj = read_table(home, "completeness_injections")
        table = read_table(home, "completeness_table")
        out["injections"] = str(len(inj))
        out["host_fp_injections"] = str(int(table["n_host_fp"].sum()))
        out[f"detected_{PRIMARY.name}"] = str(int(table["k"].sum()))
        low = table[table["theta_e_hi"] <= 1.0]
        out["completeness_theta_lt_1"] = _fmt_prop(int(low["k"].sum()), int(low["n"].sum()))
        best = table[(table["psf_bin"] <= 1) & (table["depth_bin"] >= 3) & (table["theta_e_lo"] >= 2.0)]
        out["completeness_theta_ge_2_best_cells"] = _fmt_prop(int(best["k"].sum()), int(best["n"].sum()))
        cells = table.groupby(["psf_bin", "depth_bin"])["n"].sum()
        out["cells_with_hosts"] = f"{int((cells > 0).sum())} of {len(cells)} (PSF, depth) bins"
    except (FileNotFoundError, KeyError):
        pass
    results = evaluate_all(StoreView(home, profile))
    failed = [(g, r) for g, r in results if r is not None and not r.passed]
    out["gates_error_failed"] = ", ".join(g.name for g, r in failed if g.severity == "ERROR") or "none"
    out["gates_warn_failed"] = ", ".join(g.name for g, r in failed if g.severity != "ERROR") or "none"
    return out


def data_source_of(home: Path) -> str:
    """'mock sweeps (embedded synthetic DR10 sky)' when the home holds the mock sky, else 'real sweeps'."""
    from lensaudit.mock.config import holds_mock_sky

    return "mock sweeps (embedded synthetic DR10 sky)" if holds_mock_sky(home) else "real sweeps"


def markdown(summary: dict) -> str:
    rows = [f"| {k} | {v} |" for k, v in summary.items()]
    return "\n".join(["| figure | value |", "| --- | --- |", *rows])


__all__ = ["FIELDS", "summarise", "markdown", "data_source_of"]
