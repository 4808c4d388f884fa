"""``negative_pool``: N1 parity and N2 confuser pools per sweep partition (Spark)."""

import json
from dataclasses import asdict

import dagster as dg

from assets._wiring import (add_partition_metadata, json_meta, raise_on_failed_tasks, schema_metadata,
                            side_table_files_metadata)
from assets.catalogs import lens_catalog
from assets.sweeps import SWEEP_PARTITIONS, sweep_catalog
from lensaudit.spark_jobs.entrypoint import negative_pool_job
from lensaudit.store import partition_file
from resources.settings import LensauditSettings
from resources.spark import SparkResource
from resources.sweeps import SweepSource

@dg.asset(group_name="sampling", kinds={"spark", "parquet"}, partitions_def=SWEEP_PARTITIONS,
          backfill_policy=dg.BackfillPolicy.single_run(), deps=[sweep_catalog, lens_catalog],
          metadata=schema_metadata("negative_pool"),
          description="N1 (Paper IV parity cuts) and N2 (confuser proxies, with category) negatives, one row per "
                      "(galaxy, pool), one Spark task per sweep; per-cut removal counters (per band for nobs) in "
                      "metadata and negative_pool_filter_counts.")
def negative_pool(context: dg.AssetExecutionContext, settings: LensauditSettings, spark: SparkResource,
                  sweeps: SweepSource) -> dg.MaterializeResult:
    home, profile = settings.home_path(), settings.profile_obj()
    sweeps = sweeps.with_data(settings.data())  # the run's data configuration, when it names one
    jobs = {}
    for key in context.partition_keys:
        src = partition_file(home, "sweep_catalog", key)
        if not src.exists():
            raise dg.Failure(f"negative_pool[{key}]: sweep_catalog partition missing at {src}")
        jobs[key] = [str(src), str(partition_file(home, "negative_pool", key)),
                     str(partition_file(home, "negative_pool_filter_counts", key))]
    summary = spark.run(context, negative_pool_job, jobs=jobs, cuts=asdict(profile.cuts),
                        mock_profile=profile.name if sweeps.is_mock else None)
    tasks = raise_on_failed_tasks(summary, "negative_pool")
    per: dict[str, dict] = {}
    for t in tasks:
        counters: dict[str, dict[str, int]] = {"N1": {}, "N2": {}}
        for row in json.loads(t["payload"]):
            c = counters[row["pool"]]
            c[row["cut"]] = c.get(row["cut"], 0) + row["n_rows"]
        per[t["key"]] = {
            "dagster/row_count": int(t["n_rows"]),
            "path": dg.MetadataValue.path(jobs[t["key"]][1]),
            "counters_path": dg.MetadataValue.path(jobs[t["key"]][2]),
            "removal_counters_N1": json_meta(counters["N1"]), "removal_counters_N2": json_meta(counters["N2"]),
            **side_table_files_metadata(home, "negative_pool", t["key"]),
        }
    add_partition_metadata(context, per)
    # run-wide facts only: each partition's own counts are added above
    import pandas as pd

    from lensaudit.sampling.confusers import proxy_overlap

    from pathlib import Path

    written = [j[1] for j in jobs.values() if Path(j[1]).is_file()]  # a missing file fails the schema check
    cols = ["pool", "confuser_category", "confuser_flags"]
    pool = pd.concat([pd.read_parquet(f, columns=cols) for f in written], ignore_index=True) if written else \
        pd.DataFrame(columns=cols)
    return dg.MaterializeResult(metadata={
        "partitions_in_run": len(jobs), "rows_in_run": sum(int(t["n_rows"]) for t in tasks),
        "exclusion_radius_arcsec": profile.cuts.exclusion_radius_arcsec,
        "n2_proxy_overlap": json_meta(proxy_overlap(pool)),
    })

