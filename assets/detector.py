"""``detector`` (one partition per architecture) and ``detector_evaluation`` (test split)."""

import dagster as dg

from assets._wiring import GPU_OP_TAGS, json_meta, png_metadata
from assets.cutouts import cutouts, shortcut_features
from lensaudit.detector.models import check_architecture
from lensaudit.detector.run import detector_dir, train_detector
from lensaudit.evaluation.report import roc_curve
from lensaudit.evaluation.run import evaluate_detector, evaluation_json_path
from lensaudit.plots import reliability_plot, roc_plot
from lensaudit.spec import OPERATING_POINTS, PRIMARY, PURITY_POINTS
from lensaudit.store import safe_join
from lensaudit.tables import read_table
from resources.device import DeviceResource
from resources.settings import LensauditSettings

#: The detector's partitions are the architectures a home's profile trains (``DetectorSettings.archs``;
#: ``lensaudit.detector.models.ARCHITECTURES`` are those it can build). They are dynamic, as the sweeps:
#: ``architecture_partitions_sensor`` adds the profile's at its tick and ``lensaudit materialize`` before it
#: plans, so the UI's "Materialize all" trains exactly what the CLI trains. Another architecture (DESIGN's
#: second, ``efficientnet_b0``) is one "Add partition" in the UI away.
ARCH_PARTITIONS_NAME = "architectures"
ARCH_PARTITIONS = dg.DynamicPartitionsDefinition(name=ARCH_PARTITIONS_NAME)


def new_arch_keys(instance: dg.DagsterInstance, archs) -> list[str]:
    """The architectures of ``archs`` (each checked) that are not detector partitions of ``instance`` yet."""
    known = set(instance.get_dynamic_partitions(ARCH_PARTITIONS_NAME))
    return [a for a in dict.fromkeys(map(check_architecture, archs)) if a not in known]


def register_arch_partitions(instance: dg.DagsterInstance, archs) -> list[str]:
    """Add the architectures of ``archs`` that are not detector partitions yet; the ones added."""
    new = new_arch_keys(instance, archs)
    if new:
        instance.add_dynamic_partitions(ARCH_PARTITIONS_NAME, new)
    return new


# Every architecture trains on the cutouts of all sweeps: without an explicit mapping Dagster
# would map sweep keys to architecture keys by identity (no parents), and an asset backfill of
# everything would fail or start the detector before the cutouts exist.
@dg.asset(op_tags=GPU_OP_TAGS, group_name="detector", kinds={"torch"}, partitions_def=ARCH_PARTITIONS,
          deps=[dg.AssetDep(cutouts, partition_mapping=dg.AllPartitionMapping())],
          description="The lens detector trained on the train split, selected on val: best.pt (state dict only) "
                      "and run_info.json under `$LENSAUDIT_HOME/assets/detector/<arch>/`.")
def detector(context: dg.AssetExecutionContext, settings: LensauditSettings, device: DeviceResource) -> dg.MaterializeResult:
    home, profile = settings.home_path(), settings.profile_obj()
    arch = context.partition_key
    info = train_detector(home, profile, arch, device.torch_device(), manifest=read_table(home, "training_manifest"),
                          index=read_table(home, "cutouts"), log=context.log.info)
    return dg.MaterializeResult(metadata={
        "checkpoint": str(detector_dir(home, arch) / "best.pt"),
        "run_info": json_meta(info),
        **{k: info[k] for k in ("epochs_run", "best_epoch", "stop_reason", "device_name")},
        "best_val_auc": float(info["best_val_auc"]),
        "train_images_per_s": float(info["train_images_per_s"]),
    })


@dg.asset(op_tags=GPU_OP_TAGS, group_name="detector", kinds={"torch", "parquet"}, partitions_def=ARCH_PARTITIONS, deps=[detector, shortcut_features],
          description="Test-split evaluation of the frozen detector: AUC, recall/precision at the operating thresholds "
                      f"chosen on the validation split (FPR {', '.join(f'{o.target_fpr:g}' for o in OPERATING_POINTS)}; "
                      f"purity {', '.join(f'{p.target_purity:g} at prevalence {p.prevalence:g}' for p in PURITY_POINTS)}), "
                      "ECE/MCE, tier recall, FPR per confuser category and condition bin, all with intervals.")
def detector_evaluation(context: dg.AssetExecutionContext, settings: LensauditSettings,
                        device: DeviceResource) -> dg.MaterializeResult:
    home, profile = settings.home_path(), settings.profile_obj()
    arch = context.partition_key
    report, scored = evaluate_detector(home, profile, arch, device.torch_device())
    fpr, tpr = roc_curve(scored["logit"].to_numpy(), scored["label"].to_numpy())
    auc, op = report["metrics"]["roc_auc"], report["thresholds"][PRIMARY.name]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": report["n_rows"],
        "roc_auc": float(auc["value"]), "roc_auc_lo95": float(auc["lo95"]), "roc_auc_hi95": float(auc["hi95"]),
        f"tier_a_recall_{PRIMARY.name}": json_meta(op.get("tier_recall", {}).get("A", op["recall"])),
        "metrics": json_meta(report["metrics"]),
        "thresholds": json_meta({k: {kk: vv for kk, vv in v.items() if kk not in ("fpr_by_condition",)}
                                 for k, v in report["thresholds"].items()}),
        "purity_thresholds": json_meta(report.get("purity_thresholds", {})),
        "evaluation_json": str(evaluation_json_path(home, arch)),
        "roc": png_metadata(roc_plot(fpr, tpr, auc, f"{arch}, test split"), safe_join(home, "plots", "detector_roc.png")),
        "reliability": png_metadata(reliability_plot(report["reliability"], report["metrics"]["ece"], f"{arch}, test split"),
                                    safe_join(home, "plots", "detector_reliability.png")),
        "excluded_rows": json_meta(report["excluded_rows"]),
    })


__all__ = ["ARCH_PARTITIONS", "ARCH_PARTITIONS_NAME", "detector", "detector_evaluation", "new_arch_keys",
           "register_arch_partitions"]
