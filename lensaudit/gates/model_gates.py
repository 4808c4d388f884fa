"""Gates on the trained detector and its test-split evaluation (DESIGN s3 "Evaluation").

The metrics are never taken from the stored evaluation.json alone: ``_recomputed`` derives
them again from the stored scored tables (``evaluation.run.report_from_scores``, the producer's
own function, with the profile's bootstrap size and seeds), the AUC gate decides on the
recomputed interval, and ``detector_evaluation_recomputed`` fails when the stored document
says anything else.  (The scored tables themselves are re-scored and tied to the manifest by
``integrity_gates``.)
"""

from __future__ import annotations

import json
import math

import pandas as pd

from lensaudit.gates.data_gates import splits_disjoint
from lensaudit.gates.gate_spec import GateSpec, StoreView, spec
from lensaudit.gates.result import ERROR, GateResult, cannot_compute
from lensaudit.evaluation.report import missing_intervals
from lensaudit.spec import MODEL

ASSET = "detector_evaluation"


def evaluation_rows_disjoint(used_rows: dict[str, pd.DataFrame], test_rows: dict[str, pd.DataFrame]) -> GateResult:
    """Per architecture: the exact train/val rows the model saw plus the test rows it was
    scored on share no galaxy_id and no HEALPix pixel across splits."""
    name = "detector_rows_disjoint"
    if not test_rows:
        return cannot_compute(name, ASSET, ERROR, "no evaluated detector", "0 keys in two splits")
    details, failed = {}, False
    for arch, test in test_rows.items():
        if arch not in used_rows:
            return cannot_compute(name, ASSET, ERROR, f"{arch}: rows.parquet of the trained detector missing")
        cols = ["galaxy_id", "split", "healpix_128"]
        res = splits_disjoint(pd.concat([used_rows[arch][cols], test[cols]], ignore_index=True), ASSET)
        if set(test["split"]) != {"test"}:
            res.passed = False
            res.details["non_test_rows_scored"] = int((test["split"] != "test").sum())
        details[arch] = res.details | {"passed": res.passed}
        failed |= not res.passed
    return GateResult(name, ASSET, not failed, ERROR, float(sum(not d["passed"] for d in details.values())),
                      "0 architectures with a key in two splits", details, bound=(None, 0.0))


def auc_better_than_chance(reports: dict[str, dict], min_lo95: float = MODEL.min_auc_lo95) -> GateResult:
    """The 95 % lower bound of the test ROC AUC exceeds ``min_lo95`` (chance, 0.5) for every
    evaluated architecture."""
    name = "detector_auc_better_than_chance"
    thr = f"AUC lo95 > {min_lo95:g}"
    if not reports:
        return cannot_compute(name, ASSET, ERROR, "no evaluated detector", thr)
    lows = {a: r["metrics"]["roc_auc"]["lo95"] for a, r in reports.items()}
    if any(v is None for v in lows.values()):
        return cannot_compute(name, ASSET, ERROR, f"AUC interval missing: {lows}", thr)
    worst = min(lows.values())
    return GateResult(name, ASSET, worst > min_lo95, ERROR, float(worst), thr, bound=(min_lo95, None), details={a: r["metrics"]["roc_auc"] for a, r in reports.items()})


def metrics_have_intervals(reports: dict[str, dict]) -> GateResult:
    """Every metric with a value carries its 68 % and 95 % interval."""
    name = "detector_metrics_have_intervals"
    if not reports:
        return cannot_compute(name, ASSET, ERROR, "no evaluated detector", "0 metrics without intervals")
    missing = {a: missing_intervals(r) for a, r in reports.items()}
    n = sum(len(v) for v in missing.values())
    return GateResult(name, ASSET, n == 0, ERROR, float(n), "0 metrics without intervals", {"missing": missing},
                      bound=(None, 0.0))


def _evaluated(v: StoreView) -> dict[str, dict]:
    """evaluation.json of every profile architecture that has one."""
    from lensaudit.evaluation.run import report_json

    def load():
        out = {}
        for arch in v.profile.detector.archs:
            try:
                out[arch] = report_json(v.home, arch)
            except FileNotFoundError:
                continue
        return out
    return v.memo("detector_reports", load)


def _recomputed(v: StoreView) -> dict[str, dict]:
    """arch -> the evaluation's metrics recomputed from the stored scored test and validation
    rows and shortcut features (JSON round-tripped as evaluation.json is written)."""
    from lensaudit.evaluation.run import report_from_scores, scored_rows, val_scores

    def load():
        return {arch: json.loads(json.dumps(report_from_scores(scored_rows(v.home, arch), val_scores(v.home, arch),
                                                                v.table("shortcut_features"), v.profile), default=str))
                for arch in _evaluated(v)}
    return v.memo("detector_reports_recomputed", load)


REL_TOL = 1e-12  # stored vs recomputed metric (the same function on the same floats: equal but for JSON's repr)
_MISSING = object()  # a key the stored document lacks


def _differences(want, got, path: str = "") -> list[str]:
    """Paths where the stored document ``got`` differs from the recomputed ``want`` (every leaf
    of ``want``; floats equal to ``REL_TOL``, NaN equal to NaN)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [path or "/"]
        return [d for k in want for d in _differences(want[k], got.get(k, _MISSING), f"{path}/{k}")]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [path]
        return [d for i, (a, b) in enumerate(zip(want, got)) for d in _differences(a, b, f"{path}[{i}]")]
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        same = (math.isnan(want) and math.isnan(got)) or abs(want - got) <= REL_TOL * max(1.0, abs(want))
        return [] if same else [f"{path}: stored {got!r}, recomputed {want!r}"]
    return [] if want == got else [f"{path}: stored {got!r}, recomputed {want!r}"]


def evaluation_recomputed(stored: dict[str, dict], recomputed: dict[str, dict]) -> GateResult:
    """Every metric of each stored evaluation.json (value, intervals, thresholds, recalls,
    calibration, the shortcut baseline) equals its recomputation from the stored scored tables."""
    name, threshold = "detector_evaluation_recomputed", "0 stored metrics differing from their recomputation"
    if not recomputed:
        return cannot_compute(name, ASSET, ERROR, "no evaluated detector", threshold)
    details, n = {}, 0
    for arch, want in recomputed.items():
        diff = _differences(want, stored.get(arch, {}))
        n += len(diff)
        details[arch] = {"differing": len(diff), "examples": diff[:8]} if diff else "ok"
    return GateResult(name, ASSET, n == 0, ERROR, float(n), threshold, details, bound=(None, 0.0))


def _rows_disjoint(v: StoreView) -> GateResult:
    from lensaudit.detector.run import detector_dir
    from lensaudit.evaluation.run import scored_rows

    used, test = {}, {}
    for arch in _evaluated(v):
        test[arch] = scored_rows(v.home, arch)
        p = detector_dir(v.home, arch) / "rows.parquet"
        if p.is_file():
            used[arch] = pd.read_parquet(p)
    return evaluation_rows_disjoint(used, test)


def specs() -> list[GateSpec]:
    """GateSpecs of this family (concatenated by ``lensaudit.gates.registry``)."""
    return [
        spec("detector_rows_disjoint", ASSET, ERROR, True,
             "split disjointness re-verified on the exact rows trained, validated and scored", _rows_disjoint),
        spec("detector_auc_better_than_chance", ASSET, ERROR, True,
             f"95% lower bound of the test ROC AUC, recomputed from the scored test rows, > {MODEL.min_auc_lo95:g}",
             lambda v: auc_better_than_chance(_recomputed(v)), plot="detector_roc.png"),
        spec("detector_evaluation_recomputed", ASSET, ERROR, True,
             "every metric in evaluation.json (AUC and intervals, operating thresholds chosen on val, recall, precision, "
             "FPR, tier recall, calibration, the shortcut baseline) equals its recomputation from the stored scored rows",
             lambda v: evaluation_recomputed(_evaluated(v), _recomputed(v))),
        spec("detector_metrics_have_intervals", ASSET, ERROR, False,
             "every evaluation metric carries 68% and 95% intervals (or is marked insufficient)",
             lambda v: metrics_have_intervals(_evaluated(v)), plot="detector_reliability.png"),
    ]
