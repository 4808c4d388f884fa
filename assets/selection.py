"""The selection function: ``injection_hosts``, ``completeness_table``, ``failure_modes``, ``audit_report``."""

import dagster as dg

from assets._wiring import GPU_OP_TAGS, json_meta, png_metadata, schema_metadata, side_table_files_metadata
from assets.cutouts import cutouts
from assets.detector import detector_evaluation
from assets.injection import injection_realism
from lensaudit.plots import completeness_heatmaps, marginal_curves
from lensaudit.selection.completeness import marginal
from lensaudit.selection.failure_run import run_failure_modes
from lensaudit.selection.grid import N_CELLS
from lensaudit.selection.run import build_hosts, run_completeness
from lensaudit.spec import OPERATING_POINTS, PRIMARY
from lensaudit.store import atomic_path, safe_join
from resources.device import DeviceResource
from resources.settings import LensauditSettings


@dg.asset(group_name="selection", kinds={"pandas", "parquet"}, deps=[cutouts],
          metadata=schema_metadata("injection_hosts"),
          description="Test-split negatives with good cutouts, binned by PSF FWHM (psfsize_r) and depth "
                      "(psfdepth_r, 5-sigma mag) on the completeness grid; thin bins reported.")
def injection_hosts(settings: LensauditSettings) -> dg.MaterializeResult:
    summary = build_hosts(settings.home_path(), settings.profile_obj())
    return dg.MaterializeResult(metadata={"dagster/row_count": summary["hosts"], "summary": json_meta(summary),
                                          **side_table_files_metadata(settings.home_path(), "injection_hosts")})


#: the operating FPRs of the completeness tables, the primary one marked (description text)
_FPRS = ", ".join(f"{o.target_fpr:g}" + (" default" if o == PRIMARY else "") for o in OPERATING_POINTS)


@dg.asset(op_tags=GPU_OP_TAGS, group_name="selection", kinds={"torch", "parquet"}, deps=[injection_hosts, detector_evaluation, injection_realism],
          metadata=schema_metadata("completeness_table"),
          description=f"Completeness C(theta_E, PSF, depth) over {N_CELLS} cells at the operating thresholds chosen "
                      f"on the validation split (FPR {_FPRS}), Beta(k+1, n-k+1) and host-cluster bootstrap "
                      "intervals, host false positives apart, the detectability decomposition, every injection's "
                      "record and the adversarial tests.")
def completeness_table(context: dg.AssetExecutionContext, settings: LensauditSettings,
                       device: DeviceResource) -> dg.MaterializeResult:
    home, profile = settings.home_path(), settings.profile_obj()
    summary, table = run_completeness(home, profile, device.torch_device())
    plots = safe_join(home, "plots")
    op = f"threshold {table['threshold_name'].iloc[0]} (validation split)"
    meta = {"dagster/row_count": len(table), "summary": json_meta(summary),
            "table": str(safe_join(home, "assets", "completeness_table", "data.parquet")),
            "heatmaps": png_metadata(completeness_heatmaps(table, f"completeness, {op}"),
                                     plots / "completeness_heatmaps.png"),
            "marginals": png_metadata(marginal_curves({a: marginal(table, a) for a in ("theta_e", "psf", "depth")},
                                                      f"completeness marginals (pooled cells), {op}"),
                                      plots / "completeness_marginals.png")}
    for col, name in (("observable_fraction", "observable_fraction"), ("conditional_recall", "conditional_recall")):
        meta[name] = png_metadata(completeness_heatmaps(table.assign(completeness=table[col]), name.replace("_", " "),
                                                        label=name.replace("_", " ")),
                                  plots / f"{name}_heatmaps.png")
    return dg.MaterializeResult(metadata={**meta, **side_table_files_metadata(home, "completeness_table")})


@dg.asset(group_name="selection", kinds={"pandas", "parquet"}, deps=[completeness_table],
          metadata=schema_metadata("failure_modes"),
          description="FPR per confuser category x condition bin, false negatives by cause, galleries.")
def failure_modes(settings: LensauditSettings) -> dg.MaterializeResult:
    home, profile = settings.home_path(), settings.profile_obj()
    res = run_failure_modes(home, profile)
    meta = {"dagster/row_count": res["fpr_rows"], "missed_injections": json_meta(res["missed"]),
            "threshold_logit": res["threshold_logit"]}
    for name, png in res["galleries"].items():
        meta[f"gallery_{name}"] = png_metadata(png, safe_join(home, "plots", f"gallery_{name}.png"))
    return dg.MaterializeResult(metadata={**meta, **side_table_files_metadata(home, "failure_modes")})


@dg.asset(group_name="selection", kinds={"html"}, deps=[failure_modes],
          description="One self-contained HTML audit report: provenance, gates, evaluation, completeness, "
                      "decomposition, adversarial tests, failure modes.")
def audit_report(settings: LensauditSettings) -> dg.MaterializeResult:
    from lensaudit.audit_report import build_report

    home = settings.home_path()
    path = safe_join(home, "assets", "audit_report", "audit_report.html")
    with atomic_path(path) as tmp:
        tmp.write_text(build_report(home, settings.profile_obj()), encoding="utf-8")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)),
                                          "size_bytes": path.stat().st_size})


