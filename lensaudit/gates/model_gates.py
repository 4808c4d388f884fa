"""Gates on the trained detector and its test-split evaluation (DESIGN s3 "Evaluation")."""

from __future__ import annotations

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
             f"95% lower bound of the test ROC AUC > {MODEL.min_auc_lo95:g}",
             lambda v: auc_better_than_chance(_evaluated(v)), plot="detector_roc.png"),
        spec("detector_metrics_have_intervals", ASSET, ERROR, False,
             "every evaluation metric carries 68% and 95% intervals (or is marked insufficient)",
             lambda v: metrics_have_intervals(_evaluated(v)), plot="detector_reliability.png"),
    ]
