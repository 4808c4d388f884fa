"""Automation of the sweep-partitioned data half: a schedule that backfills missing sweep
partitions (``sweep_catalog`` and ``negative_pool``) in bounded batches.

Each tick requests at most ``BATCH_PARTITIONS`` partitions that are neither materialised
(both assets) nor in a queued or running run of the job, as one run per contiguous range
(the assets' single-run backfill policy).  Run keys name the range and the tick, so a tick
evaluated twice launches nothing twice, while a later tick retries a range whose run failed.
The schedule is off by default (turn it on in the UI); runs wait in the instance's run queue
(``dagster.yaml``: one at a time).
"""

import dagster as dg

from assets.catalogs import lens_catalog
from assets.negatives import negative_pool
from assets.sweeps import SWEEP_PARTITIONS, sweep_catalog

BATCH_PARTITIONS = 4  # sweep partitions per tick, at most (a demo-profile sweep: ~1 min of local Spark)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
SWEEP_ASSETS = (sweep_catalog.key, negative_pool.key)
_S = dg.DagsterRunStatus
IN_FLIGHT = [_S.QUEUED, _S.NOT_STARTED, _S.STARTING, _S.STARTED]

sweeps_job = dg.define_asset_job(
    "lensaudit_sweeps", selection=dg.AssetSelection.assets(*SWEEP_ASSETS), partitions_def=SWEEP_PARTITIONS,
    description="sweep_catalog and negative_pool for a range of sweep partitions (the schedule's backfill batches)")


def _in_flight(instance: dg.DagsterInstance, keys: list[str]) -> set[str]:
    """Sweep partitions of queued or running runs of the job."""
    out: set[str] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(job_name=sweeps_job.name, statuses=IN_FLIGHT)):
        tags = run.tags
        if RANGE_START in tags and RANGE_END in tags and tags[RANGE_START] in keys and tags[RANGE_END] in keys:
            out.update(keys[keys.index(tags[RANGE_START]):keys.index(tags[RANGE_END]) + 1])
        elif "dagster/partition" in tags:
            out.add(tags["dagster/partition"])
    return out


def contiguous_ranges(selected: list[str], keys: list[str]) -> list[tuple[str, str]]:
    """(first, last) of each run of consecutive partitions (in ``keys`` order) of ``selected``."""
    idx = sorted(keys.index(k) for k in selected)
    out: list[tuple[str, str]] = []
    for i in idx:
        if out and keys.index(out[-1][1]) == i - 1:
            out[-1] = (out[-1][0], keys[i])
        else:
            out.append((keys[i], keys[i]))
    return out


def missing_sweep_partitions(instance: dg.DagsterInstance) -> list[str]:
    """Sweep partitions (in partition order) that lack a materialisation of either asset and
    that no queued or running run of the job covers."""
    keys = list(SWEEP_PARTITIONS.get_partition_keys())
    done = set(keys)
    for key in SWEEP_ASSETS:
        done &= set(instance.get_materialized_partitions(key))
    busy = _in_flight(instance, keys)
    return [k for k in keys if k not in done and k not in busy]


@dg.schedule(job=sweeps_job, cron_schedule="0 * * * *", default_status=dg.DefaultScheduleStatus.STOPPED,
             description=f"hourly: backfill up to {BATCH_PARTITIONS} missing sweep partitions")
def sweep_backfill_schedule(context: dg.ScheduleEvaluationContext):
    instance = context.instance
    if instance.get_latest_materialization_event(lens_catalog.key) is None:
        return dg.SkipReason("lens_catalog is not materialised (negative_pool excludes the known lenses)")
    missing = missing_sweep_partitions(instance)
    if not missing:
        return dg.SkipReason("every sweep partition is materialised or in a queued/running run")
    keys = list(SWEEP_PARTITIONS.get_partition_keys())
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M") if context.scheduled_execution_time else "manual"
    return [dg.RunRequest(run_key=f"sweeps:{first}..{last}@{tick}", tags={RANGE_START: first, RANGE_END: last})
            for first, last in contiguous_ranges(missing[:BATCH_PARTITIONS], keys)]
