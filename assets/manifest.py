"""``training_manifest``: stratified 100:1 positives + negatives with splits (Spark)."""

import dagster as dg
import pandas as pd

from assets._wiring import json_meta, schema_metadata, side_table_files_metadata
from assets.splits import spatial_splits
from lensaudit.spark_jobs.entrypoint import training_manifest_inputs, training_manifest_job
from lensaudit.spec import DATA
from lensaudit.store import partition_file
from resources.settings import LensauditSettings
from resources.spark import SparkResource

@dg.asset(group_name="sampling", kinds={"spark", "parquet"}, deps=[spatial_splits],
          metadata=schema_metadata("training_manifest"),
          description=f"{DATA.negatives_per_positive} negatives per positive in each (split, nobs_z_bin, type_bin); "
                      f"N2 a fraction {DATA.n2_fraction:g} of all negatives (the rest N1); "
                      "shortfalls in training_manifest_shortfalls; positives outside the negatives' sky/type domain "
                      "excluded with a reason in training_manifest_excluded_positives.")
def training_manifest(context: dg.AssetExecutionContext, settings: LensauditSettings, spark: SparkResource) -> dg.MaterializeResult:
    home, profile = settings.home_path(), settings.profile_obj()
    m = profile.manifest
    out = partition_file(home, "training_manifest", "data")
    out_sf = partition_file(home, "training_manifest_shortfalls", "data")
    out_ex = partition_file(home, "training_manifest_excluded_positives", "data")
    spark.run(context, training_manifest_job, **training_manifest_inputs(home, profile),
              out_manifest=str(out), out_shortfalls=str(out_sf), out_excluded=str(out_ex))
    excluded = pd.read_parquet(out_ex)
    man = pd.read_parquet(out, columns=["split", "label", "tier"])
    sf = pd.read_parquet(out_sf)
    counts = man.groupby(["split", "tier"]).size().unstack(fill_value=0)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(man), "path": str(out),
        "rows_by_split_and_tier": dg.MetadataValue.md(counts.to_markdown() if hasattr(counts, "to_markdown") else str(counts)),
        "shortfalls": dg.MetadataValue.md(sf[sf["shortfall"] > 0].to_string(index=False) if (sf["shortfall"] > 0).any() else "none"),
        "shortfall_total": int(sf["shortfall"].clip(lower=0).sum()),
        "n2_fraction": float((man.loc[man["label"] == 0, "tier"] == "N2").mean()) if (man["label"] == 0).any() else float("nan"),
        "ratio_target": m.negatives_per_positive, "seed": m.seed,
        "excluded_positives": len(excluded),
        "excluded_positives_by_reason": json_meta(excluded["reason"].value_counts().to_dict()),
        "stratum_table": json_meta(sf.to_dict(orient="records")),
        **side_table_files_metadata(home, "training_manifest"),
    })

