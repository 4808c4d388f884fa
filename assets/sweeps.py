"""``sweep_catalog``: sweep FITS files -> Parquet, one partition per sweep file.

The sweep partitions are dynamic (``SWEEP_PARTITIONS``, named ``sweeps``): nothing is listed
when the code location loads.  ``sweep_discovery_sensor`` (``assets/automation.py``) adds the
``sweep-*.fits`` files it finds under the ``sweeps`` resource's location, and
``lensaudit materialize`` adds them (``register_sweep_partitions``) before it plans its runs.
Keys keep the order in which they were added: the mock sky's own order, else sorted names,
with later files after the earlier ones.
"""

import json

import dagster as dg

from assets._wiring import add_partition_metadata, json_meta, raise_on_failed_tasks, schema_metadata
from resources.settings import LensauditSettings
from resources.spark import SparkResource
from resources.sweeps import SweepSource
from lensaudit.spark_jobs.entrypoint import sweep_catalog_job
from lensaudit.store import partition_file

SWEEP_PARTITIONS_NAME = "sweeps"
SWEEP_PARTITIONS = dg.DynamicPartitionsDefinition(name=SWEEP_PARTITIONS_NAME)


def new_sweep_keys(instance: dg.DagsterInstance, found: list[str]) -> list[str]:
    """The names of ``found`` (in its order) that are not yet sweep partitions of ``instance``."""
    known = set(instance.get_dynamic_partitions(SWEEP_PARTITIONS_NAME))
    return [k for k in dict.fromkeys(found) if k not in known]


def register_sweep_partitions(instance: dg.DagsterInstance, sweeps: SweepSource) -> list[str]:
    """Add the sweep files under ``sweeps.location`` that are not partitions yet (what the
    discovery sensor would add) and return every file found there, in partition order."""
    found = sweeps.sweep_files()
    new = new_sweep_keys(instance, found)
    if new:
        instance.add_dynamic_partitions(SWEEP_PARTITIONS_NAME, new)
    order = {k: i for i, k in enumerate(instance.get_dynamic_partitions(SWEEP_PARTITIONS_NAME))}
    return sorted(found, key=order.__getitem__)


@dg.asset(group_name="survey", kinds={"spark", "parquet"}, partitions_def=SWEEP_PARTITIONS,
          backfill_policy=dg.BackfillPolicy.single_run(), metadata=schema_metadata("sweep_catalog"),
          description="DR10 sweep rows (Tractor schema, lower-case columns), one partition and one Spark task per "
                      "sweep file.")
def sweep_catalog(context: dg.AssetExecutionContext, settings: LensauditSettings, spark: SparkResource,
                  sweeps: SweepSource) -> dg.MaterializeResult:
    home, profile = settings.home_path(), settings.profile_obj()
    sweeps = sweeps.with_data(settings.data())  # the run's data configuration, when it names one
    local = spark.mode == "local"
    # the local session's tasks write the mock sweeps themselves, on all its cores
    mock = sweeps.mock_writer(home, profile) if local else None
    jobs = {}
    for key in context.partition_keys:
        jobs[key] = (sweeps.path_for(key, home, profile, fetch=local, write_mock=mock is None),
                     str(partition_file(home, "sweep_catalog", key)))
    summary = spark.run(context, sweep_catalog_job, jobs={k: list(v) for k, v in jobs.items()}, mock=mock)
    tasks = raise_on_failed_tasks(summary, "sweep_catalog")
    per = {t["key"]: json.loads(t["payload"]) for t in tasks}
    add_partition_metadata(context, {k: {
        "dagster/row_count": int(p["rows"]), "invalid_coords": int(p["invalid_coords"]),
        "path": dg.MetadataValue.path(jobs[k][1]), "sweep_file": jobs[k][0], "sweep": json_meta(p),
    } for k, p in per.items()})
    # run-wide facts only: each partition's own counts are added above
    return dg.MaterializeResult(metadata={"source": sweeps.location, "partitions_in_run": len(jobs),
                                          "rows_in_run": sum(int(p["rows"]) for p in per.values())})

