"""``cutouts`` (stamps + index, partitioned like the sweeps) and ``shortcut_features``."""

import json

import dagster as dg

from lensaudit.spec import DATA
import pandas as pd

from assets._wiring import add_partition_metadata, json_meta, png_metadata, raise_on_failed_tasks, schema_metadata
from assets.manifest import training_manifest
from assets.sweeps import SWEEP_PARTITIONS
from lensaudit.plots import feature_auc_plot
from lensaudit.spark_jobs.entrypoint import cutouts_job, shortcut_features_job
from lensaudit.store import asset_files, partition_file, safe_join
from lensaudit.survey.instrument import BANDS, STAMP_PIX
from resources.cutout_source import CutoutSourceResource
from resources.settings import LensauditSettings
from resources.spark import SparkResource


@dg.asset(group_name="cutouts", kinds={"spark", "numpy", "parquet"}, partitions_def=SWEEP_PARTITIONS,
          backfill_policy=dg.BackfillPolicy.single_run(), deps=[training_manifest], metadata=schema_metadata("cutouts"),
          description=f"{STAMP_PIX}x{STAMP_PIX} {','.join(BANDS)} float32 stamps (nmgy/pixel) of every manifest row, "
                      "one Spark task per sweep partition, in content-hashed shards under "
                      "$LENSAUDIT_HOME/cutout_store/shards/, with a Parquet index (galaxy_id, cutout_path, "
                      "cutout_offset, cutout_ok, fail_reason, QC columns) per partition.")
def cutouts(context: dg.AssetExecutionContext, settings: LensauditSettings, spark: SparkResource,
            cutout_source: CutoutSourceResource) -> dg.MaterializeResult:
    home, profile = settings.home_path(), settings.profile_obj()
    cutout_source = cutout_source.with_data(settings.data())  # the run's data configuration, when it names one
    keys = list(context.partition_keys)
    summary = spark.run(context, cutouts_job,
                        sweeps=keys, manifest=str(partition_file(home, "training_manifest", "data")),
                        spec=cutout_source.spec(home, profile, run_key=context.run_id, nodes_default=spark.node_count()),
                        store_dir=str(safe_join(home, "cutout_store")),
                        index_paths={k: str(partition_file(home, "cutouts", k)) for k in keys})
    tasks = raise_on_failed_tasks(summary, "cutouts")
    per = {t["key"]: json.loads(t["payload"]) for t in tasks}
    add_partition_metadata(context, {k: {
        "dagster/row_count": int(p["rows"]), "cutouts_ok": int(p["ok"]),
        "failure_rate": (p["rows"] - p["ok"]) / p["rows"] if p["rows"] else float("nan"),
        "fail_reasons": json_meta(p["fail_reasons"]), "index_path": dg.MetadataValue.path(str(partition_file(home, "cutouts", k))),
    } for k, p in per.items()})
    n = sum(p["rows"] for p in per.values())
    # run-wide facts only: each partition's own counts are added above
    return dg.MaterializeResult(metadata={
        "partitions_in_run": len(keys), "rows_in_run": n, "source": cutout_source.kind,
        **({"http_rate": json_meta(summary["http_rate"])} if summary.get("http_rate") else {}),
        "store": str(safe_join(home, "cutout_store"))})


@dg.asset(group_name="cutouts", kinds={"spark", "parquet"}, deps=[cutouts], metadata=schema_metadata("shortcut_features"),
          description="Per-cutout shortcut features (core/annulus/outer statistics, radial gradient, azimuthal "
                      "asymmetry, Laplacian energy, annulus-core colours, saturation and edge scores) for the "
                      "single-feature AUC and core-only logistic-regression gates; AUC table and plot in metadata.")
def shortcut_features(context: dg.AssetExecutionContext, settings: LensauditSettings, spark: SparkResource) -> dg.MaterializeResult:
    home = settings.home_path()
    index_paths = {f.stem + ".fits": str(f) for f in asset_files(home, "cutouts")}
    out = partition_file(home, "shortcut_features", "data")
    summary = spark.run(context, shortcut_features_job, index_paths=index_paths,
                        store_dir=str(safe_join(home, "cutout_store")), out=str(out))
    raise_on_failed_tasks(summary, "shortcut_features")
    from lensaudit.cutouts.features import FEATURES
    from lensaudit.gates.shortcut_gates import feature_auc_table

    table = feature_auc_table(pd.read_parquet(out), FEATURES)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": summary["rows"], "excluded_not_ok": summary["excluded_not_ok"],
        "saturation_threshold_nmgy": summary["saturation_threshold_nmgy"],
        "feature_auc": dg.MetadataValue.md(table.round(3).to_markdown(index=False)),
        "feature_auc_plot": png_metadata(feature_auc_plot(table, DATA.shortcut_yellow, DATA.shortcut_red),
                                         safe_join(home, "plots", "shortcut_feature_auc.png")),
    })


