"""The audit report: one self-contained HTML file (images embedded as base64 PNG).

Sections: provenance (commit, profile, detector config), the gate table (every gate of
``lensaudit.gates.registry``, as ``lensaudit gates`` prints it), the detector evaluation
with intervals and the shortcut baseline, the completeness heatmaps and marginal curves,
the detectability decomposition, the adversarial tests and the failure modes.  Every
figure is read from ``$LENSAUDIT_HOME/plots/`` where the assets wrote it.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from lensaudit import provenance
from lensaudit.config import Profile
from lensaudit.detector.run import detector_dir
from lensaudit.evaluation.run import evaluation_json_path
from lensaudit.gates.registry import StoreView, evaluate_all
from lensaudit.tables import read_table
from lensaudit.summary import data_source_of

PLOTS = [("Spatial splits", "spatial_splits_sky.png"), ("Shortcut features", "shortcut_feature_auc.png"),
         ("Injection realism", "injection_realism.png"), ("Detector ROC (test split)", "detector_roc.png"),
         ("Reliability (test split)", "detector_reliability.png"),
         ("Completeness C(theta_E, PSF) per depth slice, at the primary operating threshold (validation FPR 1e-2)",
          "completeness_heatmaps.png"),
         ("Completeness marginals", "completeness_marginals.png"),
         ("Observable fraction (model-free arc visibility) per depth slice", "observable_fraction_heatmaps.png"),
         ("Conditional recall among observable injections", "conditional_recall_heatmaps.png"),
         ("Highest-S/N missed injections", "gallery_missed_injections.png")]

CSS = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}table{border-collapse:collapse;"
       "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}.FAIL{background:#fdd}.PASS{background:#dfd}"
       "img{max-width:100%}")


def _img(path: Path) -> str:
    if not path.is_file():
        return f"<p><em>missing figure {html.escape(path.name)}</em></p>"
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def _fmt(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "n/a" + (f" ({html.escape(str(m.get('reason')))})" if m and m.get("reason") else "")
    k = f" ({m['k']}/{m['n']})" if "k" in m else ""
    return f"{m['value']:.3g}{k} [68%: {m['lo68']:.3g}-{m['hi68']:.3g}; 95%: {m['lo95']:.3g}-{m['hi95']:.3g}]"


def _purity_lines(ev: dict) -> dict:
    """Recall, FPR and purity (at its stated prevalence) at each fixed-purity point."""
    lines = {}
    for name, t in ev.get("purity_thresholds", {}).items():
        for k in ("recall", "fpr", "purity"):
            lines[f"{k} @ {name}"] = t.get(k)
    return lines


def operating_point_table(ev: dict) -> str:
    """The operating points of an evaluation.json, one row each: the FPR points and the
    fixed-purity points (purity at the stated prevalence), every threshold chosen on the
    validation split, with the test split's recall / FPR / purity and their intervals."""
    rows = []
    for kind, key in (("fixed FPR", "thresholds"), ("fixed purity", "purity_thresholds")):
        for name, t in ev.get(key, {}).items():
            if not t.get("sufficient"):  # the definition column says why
                t = {k: v for k, v in t.items() if k not in ("recall", "fpr", "purity")}
            rows.append({"point": html.escape(name), "kind": kind, "chosen on": t.get("chosen_on", "val"),
                         "logit": "n/a" if t.get("logit") is None else f"{t['logit']:.4g}",
                         "definition": html.escape(str(t.get("definition", ""))), "test recall": _fmt(t.get("recall")),
                         "test FPR": _fmt(t.get("fpr")),
                         "test purity at prevalence": (_fmt(t.get("purity")) + f" (pi = {t['prevalence']:g})"
                                                       + html.escape(f"; {(t.get('purity') or {}).get('caveat')}"
                                                                     if (t.get("purity") or {}).get("caveat") else "")
                                                       if key == "purity_thresholds" else "")})
    if not rows:
        return ""
    return ("<h3>Operating points (thresholds from the validation split, applied to the test split)</h3>"
            + pd.DataFrame(rows).to_html(index=False, border=0, escape=False))  # cells escaped above


def _table(df: pd.DataFrame, max_rows: int = 60) -> str:
    return df.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0)


def build_report(home: Path, profile: Profile) -> str:
    arch = profile.detector.audit_arch
    plots = home / "plots"
    parts = [f"<html><head><meta charset='utf-8'><title>lensaudit audit</title><style>{CSS}</style></head><body>",
             "<h1>lensaudit audit report</h1>"]
    info_path = detector_dir(home, arch) / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    parts.append("<h2>Provenance</h2><table>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in {
            "report built (UTC)": provenance.utc_now(), "code commit": provenance.git_commit(), "profile": profile.name,
            "data source": data_source_of(home), "audited architecture": arch, "detector trained at commit": info.get("git_commit"),
            "detector config sha256": info.get("config_sha256"), "manifest sha256": info.get("manifest_sha256"),
            "device": info.get("device_name"), "epochs run / best": f"{info.get('epochs_run')} / {info.get('best_epoch')}",
        }.items()) + "</table>")
    if data_source_of(home).startswith("mock"):
        parts.append(f"<p><strong>Data source: the embedded mock sky</strong> (profile {html.escape(profile.name)}): "
                     "synthetic DR10-like sweeps and cutouts; no number in this report is a science result.</p>")
    rows = evaluate_all(StoreView(home, profile))
    gate_df = pd.DataFrame([{"gate": s.name, "asset": s.asset, "result": "not materialised" if r is None else
                             ("PASS" if r.passed else "FAIL"), "severity": s.severity, "blocking": s.blocking,
                             "metric": "" if r is None else r.metric_text(), "threshold": "" if r is None else r.threshold}
                            for s, r in rows])
    gate_html = gate_df.to_html(index=False, border=0)
    for word in ("PASS", "FAIL"):
        gate_html = gate_html.replace(f"<td>{word}</td>", f'<td class="{word}">{word}</td>')
    parts.append("<h2>Gates</h2>" + gate_html)
    eval_path = evaluation_json_path(home, arch)
    if eval_path.is_file():
        ev = json.loads(eval_path.read_text())
        lines = {"ROC AUC": ev["metrics"]["roc_auc"], "ECE": ev["metrics"]["ece"], "MCE": ev["metrics"]["mce"],
                 "ECE top 1 %": ev["metrics"]["ece_top1pct"],
                 "Brier skill vs constant prevalence": ev["metrics"].get("brier_skill_vs_prevalence")}
        for name, t in ev["thresholds"].items():
            lines[f"recall @ {name}"] = t.get("recall")
            lines[f"precision @ {name}"] = t.get("precision")
            for tier in ("A", "B"):
                if "tier_recall" in t:
                    lines[f"held-out tier-{tier} recall @ {name}"] = t["tier_recall"][tier]
        lines.update(_purity_lines(ev))
        base = ev.get("baseline_shortcut_lr", {})
        if base:
            lines["baseline (shortcut-feature LR) ROC AUC"] = base["metrics"]["roc_auc"]
        parts.append(f"<h2>Detector evaluation ({html.escape(arch)}, test split: {ev['n_positives']} lenses, "
                     f"{ev['n_negatives']} negatives)</h2><table>" + "".join(
                         f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in lines.items()) + "</table>")
        parts.append(operating_point_table(ev))
    for title, name in PLOTS:
        parts.append(f"<h3>{html.escape(title)}</h3>{_img(plots / name)}")
    for asset, title in (("completeness_table", "Completeness table (cells with injections)"),
                         ("adversarial_scores", "Adversarial tests (logits before / after)"), ("failure_modes", "FPR by confuser category and condition")):
        try:
            df = read_table(home, asset)
        except FileNotFoundError:
            parts.append(f"<h3>{title}</h3><p><em>not materialised</em></p>")
            continue
        if asset == "completeness_table":
            df = df[df["n"] > 0][["theta_e_lo", "theta_e_hi", "psf_lo", "psf_hi", "depth_lo", "depth_hi", "n", "k",
                                  "n_host_fp", "completeness", "lo95", "hi95", "n_hosts", "cluster_lo95", "cluster_hi95",
                                  "observable_fraction", "conditional_recall"]]
        if asset == "adversarial_scores":
            df = df.groupby("test", as_index=False).agg(n=("logit_before", "size"), mean_before=("logit_before", "mean"),
                                                         mean_after=("logit_after", "mean"))
        parts.append(f"<h3>{title}</h3>{_table(df)}")
    for g in sorted(plots.glob("gallery_fp_*.png")):
        parts.append(f"<h3>Top-scored false positives: {html.escape(g.stem[len('gallery_fp_'):])}</h3>{_img(g)}")
    ext = _external_audits(home)
    if not ext.empty:
        parts.append("<h2>External finders audited on this home</h2><p>Each has its own report "
                     "(<code>audit_report.html</code> in its folder; README \"Audit your own finder\").</p>" + _table(ext))
    parts.append("</body></html>")
    return "\n".join(parts)


def _external_audits(home: Path) -> pd.DataFrame:
    """One row per audit folder ``$LENSAUDIT_HOME/external/<name>`` (``lensaudit audit-model`` /
    ``import-scores``): mode, thresholds, injections, pooled completeness at its primary threshold."""
    rows = []
    for rec in sorted((home / "external").glob("*/external_audit.json")):
        try:
            a = json.loads(rec.read_text())
            t = read_table(rec.parent, "completeness_table")
        except (OSError, ValueError, FileNotFoundError):
            continue
        n, k = int(t["n"].sum()), int(t["k"].sum())
        rows.append({"finder": a.get("detector"), "mode": a.get("mode"), "thresholds (logit)": str(a.get("thresholds")),
                     "injections": a.get("injections"), "pooled completeness": f"{k}/{n}" + (f" = {k / n:.3g}" if n else ""),
                     "sufficient cells": a.get("sufficient_cells"), "folder": str(rec.parent)})
    return pd.DataFrame(rows)
