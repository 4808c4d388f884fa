"""The selection gates of an external detector's audit folder (``lensaudit.selection.external``).

The registry's gates of the selection family (assets ``injection_hosts`` and
``completeness_table``: hosts held out, the completeness table re-derived from the
injections at the threshold recomputed from the audited detector's own validation scores,
the adversarial gates) run on a ``StoreView`` that reads the audit folder first and the
home for the inputs, with the audited detector's name as the profile's audit architecture.
Used by ``lensaudit audit-model``, ``import-scores`` and ``gates --home <audit folder>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from lensaudit.config import Profile
from lensaudit.gates.gate_spec import StoreView
from lensaudit.store import asset_files
from lensaudit.tables import read_table

#: the assets whose gates judge an audited detector (the selection family of the registry)
SELECTION_GATE_ASSETS = ("injection_hosts", "completeness_table")


@dataclass
class AuditView(StoreView):
    """A ``StoreView`` of an audit folder that falls back to the home for the inputs."""

    source: Path | None = field(default=None)

    def _where(self, asset: str) -> Path:
        return self.home if asset_files(self.home, asset) or self.source is None else self.source


def audit_profile(profile: Profile, name: str) -> Profile:
    """The profile with the audited detector's name as the audit architecture (the gates read
    its validation scores)."""
    return replace(profile, detector=replace(profile.detector, audit_arch=name))


def gate_view(home: Path, out: Path, profile: Profile, name: str) -> AuditView:
    return AuditView(Path(out), audit_profile(profile, name), source=Path(home))


def selection_gates():
    from lensaudit.gates.registry import GATES

    return [g for g in GATES if g.asset in SELECTION_GATE_ASSETS]


def evaluate_selection_gates(view: StoreView) -> list:
    """[GateResult] of ``selection_gates()`` on ``view``; a gate that raises becomes a failed
    result naming the error (as ``lensaudit gates`` does)."""
    from lensaudit.gates.result import cannot_compute

    out = []
    for g in selection_gates():
        try:
            out.append(g.evaluate(view))
        except Exception as exc:  # noqa: BLE001 - one broken artefact must not hide the other gates
            out.append(cannot_compute(g.name, g.asset, g.severity, f"{type(exc).__name__}: {str(exc)[:300]}"))
    return out


def build_external_report(out: Path, summary: dict, gates: list) -> Path:
    """``out/audit_report.html``: one self-contained page of an external finder's audit
    (provenance, its selection gates, completeness heatmaps and marginals, the tables, the
    galleries), drawn with the home report's helpers."""
    import html
    import json

    from lensaudit.audit_report import CSS, _img, _table
    from lensaudit.plots import completeness_heatmaps, marginal_curves
    from lensaudit.selection.completeness import marginal
    from lensaudit.store import atomic_path

    out = Path(out)
    table = read_table(out, "completeness_table")
    op = f"threshold {table['threshold_name'].iloc[0]} (logit {table['threshold_logit'].iloc[0]:.4g}, its validation split)"
    prov = {k: summary.get(k) for k in ("detector", "mode", "profile", "home", "device", "val_rows", "test_rows",
                                        "injections", "sufficient_cells", "thresholds", "scores_file", "scores_sha256",
                                        "scores_column", "export_npz_sha256") if summary.get(k) is not None}
    if "model" in summary:
        prov["model"] = {k: summary["model"].get(k) for k in ("model", "format", "bands", "input_size", "preprocessing",
                                                              "layout", "output", "model_sha256")}
    parts = [f"<html><head><meta charset='utf-8'><title>lensaudit: {html.escape(str(summary.get('detector')))}"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>Selection function of an external finder: {html.escape(str(summary.get('detector')))}</h1>",
             "<h2>Provenance</h2><table>" + "".join(
                 f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v, default=str))}</td></tr>"
                 for k, v in prov.items()) + "</table>"]
    gate_df = pd.DataFrame([{"gate": g.name, "asset": g.asset, "result": "PASS" if g.passed else "FAIL",
                             "severity": g.severity, "metric": g.metric_text(), "threshold": g.threshold} for g in gates])
    gh = gate_df.to_html(index=False, border=0)
    for word in ("PASS", "FAIL"):
        gh = gh.replace(f"<td>{word}</td>", f'<td class="{word}">{word}</td>')
    parts.append("<h2>Selection gates</h2>" + gh)
    heat = completeness_heatmaps(table, f"completeness, {op}")
    marg = marginal_curves({a: marginal(table, a) for a in ("theta_e", "psf", "depth")}, f"completeness marginals, {op}")
    for title, png, name in (("Completeness C(theta_E, PSF) per depth slice", heat, "completeness_heatmaps.png"),
                             ("Completeness marginals", marg, "completeness_marginals.png")):
        with atomic_path(out / "plots" / name) as tmp:
            tmp.write_bytes(png)
        parts.append(f"<h3>{title}</h3>{_img(out / 'plots' / name)}")
    cells = table[table["n"] > 0][["theta_e_lo", "theta_e_hi", "psf_lo", "psf_hi", "depth_lo", "depth_hi", "n", "k",
                                   "n_host_fp", "completeness", "lo95", "hi95", "observable_fraction",
                                   "conditional_recall"]]
    parts.append(f"<h3>Completeness table (cells with injections)</h3>{_table(cells)}")
    adv = read_table(out, "adversarial_scores").groupby("test", as_index=False).agg(
        n=("logit_before", "size"), mean_before=("logit_before", "mean"), mean_after=("logit_after", "mean"))
    parts.append(f"<h3>Adversarial tests (logits before / after)</h3>{_table(adv)}")
    parts.append(f"<h3>FPR by confuser category and condition</h3>{_table(read_table(out, 'failure_modes'))}")
    for g in sorted((out / "plots").glob("gallery_*.png")):
        parts.append(f"<h3>{html.escape(g.stem[len('gallery_'):].replace('_', ' '))}</h3>{_img(g)}")
    parts.append("</body></html>")
    path = out / "audit_report.html"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path
