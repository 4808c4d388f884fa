"""Audit an external lens finder from the UI: the job ``lensaudit_external_detector``.

An op job, not an asset (its results live in an audit folder ``$LENSAUDIT_HOME/external/<name>``,
beside the home's own assets, and a home can hold several): launch it from the Launchpad with
either an input spec (an in-process TorchScript / ONNX model, run on the device resource) or
a scores file of stamps exported by ``lensaudit export-injections``::

    ops: {audit_external_detector: {config: {spec: /path/finder.json}}}
    ops: {audit_external_detector: {config: {scores: /path/scores.parquet, name: my-finder}}}

Only wiring: ``lensaudit.selection.external`` does the work, ``lensaudit.external_gates`` judges it.
"""

import dagster as dg
from pydantic import Field

from assets._wiring import GPU_OP_TAGS, json_meta
from resources.device import DeviceResource
from resources.settings import LensauditSettings


class ExternalAuditConfig(dg.Config):
    spec: str = Field(default="", description="input spec JSON of a TorchScript / ONNX finder (in-process audit)")
    scores: str = Field(default="", description="scores (.parquet / .csv: id + logit or probability) of the "
                                                "exported stamps (offline audit)")
    name: str = Field(default="imported", description="offline audit: the finder's name (its audit folder)")


@dg.op(tags=GPU_OP_TAGS, description="The selection function, failure modes and selection gates of an external finder.")
def audit_external_detector(context: dg.OpExecutionContext, config: ExternalAuditConfig,
                            settings: LensauditSettings, device: DeviceResource) -> dict:
    from lensaudit.detector.external import ExternalDetectorError, load_external
    from lensaudit.external_gates import build_external_report, evaluate_selection_gates, gate_view
    from lensaudit.selection.external import OfflineError, audit_detector, import_scores

    if bool(config.spec) == bool(config.scores):
        raise dg.Failure("give exactly one of spec (an in-process model) or scores (an imported scores file)")
    home, profile = settings.home_path(), settings.profile_obj()
    try:
        if config.spec:
            det = load_external(config.spec, device.torch_device())
            name = det.name
            summary = audit_detector(home, profile, det, device.torch_device(),
                                     provenance={"mode": "in-process model", "model": det.describe()})
        else:
            name = config.name
            summary = import_scores(home, profile, config.scores, name)
    except (ExternalDetectorError, OfflineError, FileNotFoundError, ValueError) as exc:
        raise dg.Failure(f"external detector audit: {exc}") from None
    gates = evaluate_selection_gates(gate_view(home, summary["out"], profile, name))
    report = build_external_report(summary["out"], summary, gates)
    table = {g.name: {"passed": bool(g.passed), "severity": g.severity, "threshold": g.threshold} for g in gates}
    context.add_output_metadata({"out": dg.MetadataValue.path(summary["out"]), "report": dg.MetadataValue.path(str(report)),
                                 "summary": json_meta(summary),
                                 "gates": json_meta(table),
                                 "failed_error_gates": sum(not g.passed and g.severity == "ERROR" for g in gates)})
    return {"out": summary["out"], "gates": table}


@dg.job(name="lensaudit_external_detector",
        description="audit an external finder (TorchScript / ONNX spec, or imported scores); results under "
                    "$LENSAUDIT_HOME/external/<name>")
def external_detector_job():
    audit_external_detector()
