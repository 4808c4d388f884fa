"""Automation of the data half: a sensor that discovers sweep files (the dynamic sweep
partitions), a schedule that backfills missing sweep partitions (``sweep_catalog`` and
``negative_pool``) in bounded batches, and a sensor that re-materialises ``lens_catalog`` and
its downstream data half when the lens catalogue's version changes.

``sweep_discovery_sensor`` (on by default, every ``SWEEP_DISCOVERY_INTERVAL_S``) lists the
``sweep-*.fits`` files under the ``sweeps`` resource's location (the mock sky, a directory, an
HTTP(S) mirror's index page or an S3 prefix) and adds those that are not partitions yet with
``SensorResult(dynamic_partitions_requests=[AddDynamicPartitionsRequest])``, in sorted order
(the mock sky: its own order); other names are ignored, nothing is ever removed (a vanished
file keeps its partition and materialisations).  A location that cannot be listed fails the
tick with ``SweepLocationError`` naming it (the UI shows the failed tick).  It requests no run:
the backfill schedule, the UI or ``lensaudit materialize`` build the new partitions.

Each tick requests at most ``BATCH_PARTITIONS`` partitions that are neither materialised
(both assets) nor in a queued or running run of the job, as one run per contiguous range
(the assets' single-run backfill policy).  Run keys name the range and the tick, so a tick
evaluated twice launches nothing twice, while a later tick retries a range whose run failed.
The schedule is off by default (turn it on in the UI); runs wait in the instance's run queue
(``dagster.yaml``: one at a time).

``architecture_partitions_sensor`` (on by default, as often) adds the architectures of the profile it
resolves at the tick (``detector.archs``; the home's run record, then ``$LENSAUDIT_PROFILE``, then
``demo``) as partitions of the detector assets, as ``lensaudit materialize`` does before it plans.

``lens_catalog_version_sensor`` computes the catalogue fingerprint (lenscat's version + a sha256
of the known-lens table ``lens_catalog`` would write: ``lensaudit.lens_catalog_table`` builds it,
``lensaudit.catalogs.version`` fingerprints it) for the
profile and sweep source it resolves at the tick, and compares it with the fingerprint the latest
``lens_catalog`` materialisation recorded.  When they differ (or ``lens_catalog`` was never
materialised) it requests one run of ``lensaudit_main`` (the job of the data half, as
``lensaudit materialize`` runs it) for ``lens_catalog`` and its downstream up to, not including,
the detector, over the range of sweep partitions whose ``sweep_catalog`` is materialised
(``sweep_catalog`` joins the run when that range has gaps, so every partition of it can be built).
With no sweep partition materialised only ``lens_catalog`` runs: the schedule builds the sweeps,
and the rest follows.  The run key is ``<recorded fingerprint>-><new fingerprint>``: re-ticks
before the run finishes launch nothing twice, and a return to an earlier catalogue is a new key.
A failed run is not retried by the sensor (its key is taken): re-execute it from the UI.  The
detector and the selection function then follow with ``lensaudit_detector`` and the rest
(``lensaudit materialize --select ...`` or the UI).  Off by default.
"""

import dagster as dg

from assets.catalogs import FINGERPRINT_KEY, lens_catalog, mock_sky_of
from assets.detector import ARCH_PARTITIONS, new_arch_keys
from assets.negatives import negative_pool
from assets.sweeps import SWEEP_PARTITIONS, new_sweep_keys, sweep_catalog
from lensaudit.catalogs.version import catalogue_fingerprint
from lensaudit.data_config import DataConfigError, data_config_at_run_time
from lensaudit.lens_catalog_table import lens_catalog_table
from resources.settings import LensauditSettings
from resources.sweeps import SweepSource

BATCH_PARTITIONS = 4  # sweep partitions per tick, at most (a demo-profile sweep: ~1 min of local Spark)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
SWEEP_ASSETS = (sweep_catalog.key, negative_pool.key)
_S = dg.DagsterRunStatus
IN_FLIGHT = [_S.QUEUED, _S.NOT_STARTED, _S.STARTING, _S.STARTED]

# Dagster runs one partitions definition per job: the architecture-partitioned detector
# assets get their own job (definitions.py); `lensaudit materialize` chains the two (data,
# detector per architecture, then the selection function), as does the UI's "Materialize all".
main_job = dg.define_asset_job("lensaudit_main", selection=dg.AssetSelection.all() - dg.AssetSelection.groups("detector"),
                               description="the audit's data half and selection function (the detector has its own job)")
sweeps_job = dg.define_asset_job(
    "lensaudit_sweeps", selection=dg.AssetSelection.assets(*SWEEP_ASSETS), partitions_def=SWEEP_PARTITIONS,
    description="sweep_catalog and negative_pool for a range of sweep partitions (the schedule's backfill batches)")


SWEEP_DISCOVERY_INTERVAL_S = 60  # one listing call (a directory, an index page, an S3 list) a minute


@dg.sensor(minimum_interval_seconds=SWEEP_DISCOVERY_INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING,
           description="adds a sweep partition for every new sweep-*.fits file under the sweeps resource's "
                       "location (mock sky, directory, HTTP(S) mirror or S3 prefix); requests no run")
def sweep_discovery_sensor(context: dg.SensorEvaluationContext, sweeps: SweepSource):
    # $LENSAUDIT_DATA_CONFIG of the daemon's process, read at each tick (a sensor has no run config)
    try:
        sweeps = sweeps.with_data(data_config_at_run_time())
    except DataConfigError as exc:
        raise dg.Failure(str(exc)) from None
    found = sweeps.sweep_files()  # SweepLocationError (the location, the cause) fails the tick
    if not found:
        return dg.SkipReason(f"no sweep-*.fits file under {sweeps.location!r}")
    new = new_sweep_keys(context.instance, found)
    if not new:
        return dg.SkipReason(f"no new sweep file under {sweeps.location!r} ({len(found)} found, all partitions)")
    context.log.info(f"{len(new)} new sweep file(s) under {sweeps.location!r}: {', '.join(new)}")
    return dg.SensorResult(dynamic_partitions_requests=[SWEEP_PARTITIONS.build_add_request(new)])


@dg.sensor(minimum_interval_seconds=SWEEP_DISCOVERY_INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING,
           description="adds a detector partition for every architecture the home's profile trains "
                       "(detector.archs), so that \"Materialize all\" trains what lensaudit materialize trains; "
                       "requests no run")
def architecture_partitions_sensor(context: dg.SensorEvaluationContext, settings: LensauditSettings):
    # the profile as a run would resolve it now: the home's run record, $LENSAUDIT_PROFILE, demo
    archs = settings.profile_obj().detector.archs
    new = new_arch_keys(context.instance, archs)
    if not new:
        return dg.SkipReason(f"every architecture of the profile is a detector partition ({', '.join(archs)})")
    context.log.info(f"new detector partition(s): {', '.join(new)}")
    return dg.SensorResult(dynamic_partitions_requests=[ARCH_PARTITIONS.build_add_request(new)])


def sweep_keys(instance: dg.DagsterInstance) -> list[str]:
    """The sweep partitions the instance knows, in partition order."""
    return list(SWEEP_PARTITIONS.get_partition_keys(dynamic_partitions_store=instance))


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
    keys = sweep_keys(instance)
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
    keys = sweep_keys(instance)
    if not keys:
        return dg.SkipReason("no sweep partition yet (sweep_discovery_sensor adds them)")
    missing = missing_sweep_partitions(instance)
    if not missing:
        return dg.SkipReason("every sweep partition is materialised or in a queued/running run")
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M") if context.scheduled_execution_time else "manual"
    return [dg.RunRequest(run_key=f"sweeps:{first}..{last}@{tick}", tags={RANGE_START: first, RANGE_END: last})
            for first, last in contiguous_ranges(missing[:BATCH_PARTITIONS], keys)]


LENS_SENSOR_INTERVAL_S = 600  # the catalogue changes with a lenscat upgrade (a code reload) or the profile
FINGERPRINT_TAG = "lensaudit/lens_catalog_fingerprint"
#: lens_catalog and its downstream before the detector: the data half that a new catalogue makes stale
LENS_REFRESH = dg.AssetSelection.assets(lens_catalog).downstream() - dg.AssetSelection.groups("detector").downstream()


def recorded_fingerprint(instance: dg.DagsterInstance) -> str | None:
    """The catalogue fingerprint of the latest ``lens_catalog`` materialisation ('' when it
    recorded none); None when it was never materialised."""
    ev = instance.get_latest_materialization_event(lens_catalog.key)
    if ev is None or ev.asset_materialization is None:
        return None
    value = ev.asset_materialization.metadata.get(FINGERPRINT_KEY)
    return str(value.value) if value is not None else ""


def lens_refresh_request(instance: dg.DagsterInstance, fingerprint: str, recorded: str | None) -> dg.RunRequest:
    """The run that rebuilds ``lens_catalog`` and its downstream data half (module docstring)."""
    from assets import ALL_ASSETS  # lazily: the package's asset list, to resolve the selection on

    keys = sweep_keys(instance)
    built = set(instance.get_materialized_partitions(sweep_catalog.key))
    built_keys = [k for k in keys if k in built]
    tags = {FINGERPRINT_TAG: fingerprint}
    if not built_keys:
        selection = {lens_catalog.key}
    else:
        selection = set(LENS_REFRESH.resolve(ALL_ASSETS))
        first, last = built_keys[0], built_keys[-1]
        if keys.index(last) - keys.index(first) + 1 > len(built_keys):
            selection.add(sweep_catalog.key)  # gaps in the range: build their sweeps too
        tags.update({RANGE_START: first, RANGE_END: last})
    before = "never" if recorded is None else (recorded or "unrecorded")
    return dg.RunRequest(run_key=f"{before}->{fingerprint}", asset_selection=sorted(selection), tags=tags)


@dg.sensor(job=main_job, minimum_interval_seconds=LENS_SENSOR_INTERVAL_S, default_status=dg.DefaultSensorStatus.STOPPED,
           description="re-materialises lens_catalog and its downstream data half when the lens catalogue "
                       "(lenscat version + sha256 of the known-lens table) differs from the one last materialised")
def lens_catalog_version_sensor(context: dg.SensorEvaluationContext, settings: LensauditSettings, sweeps: SweepSource):
    table, _ = lens_catalog_table(mock_sky_of(settings, sweeps))
    fingerprint = catalogue_fingerprint(table)
    recorded = recorded_fingerprint(context.instance)
    if recorded == fingerprint:
        return dg.SkipReason(f"lens_catalog is materialised at the current catalogue {fingerprint}")
    return lens_refresh_request(context.instance, fingerprint, recorded)
