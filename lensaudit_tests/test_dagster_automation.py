"""The schedule that backfills missing sweep partitions in bounded batches."""

from datetime import datetime, timezone

import dagster as dg
import pytest

from assets.automation import (BATCH_PARTITIONS, RANGE_END, RANGE_START, contiguous_ranges, missing_sweep_partitions,
                               sweep_backfill_schedule, sweeps_job)
from assets.sweeps import SWEEP_PARTITIONS_NAME
from resources.sweeps import discover_sweep_partitions

KEYS = discover_sweep_partitions("mock")
TICK = datetime(2026, 1, 2, 3, 0, tzinfo=timezone.utc)


def _materialised(instance, asset, keys):
    for k in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=k))


def _tick(instance, when=TICK):
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as ctx:
        return sweep_backfill_schedule(ctx)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(SWEEP_PARTITIONS_NAME, KEYS)  # what sweep_discovery_sensor adds
        yield inst


def _covered(requests):
    out = []
    for rr in requests:
        i, j = KEYS.index(rr.tags[RANGE_START]), KEYS.index(rr.tags[RANGE_END])
        out += KEYS[i:j + 1]
    return out


def test_schedule_is_registered_and_off_by_default():
    from definitions import defs

    sched = defs.resolve_schedule_def("sweep_backfill_schedule")
    assert sched.job_name == "lensaudit_sweeps" and sched.default_status == dg.DefaultScheduleStatus.STOPPED
    assert {k.to_user_string() for k in defs.resolve_job_def("lensaudit_sweeps").asset_layer.executable_asset_keys} \
        >= {"sweep_catalog", "negative_pool"}
    # a tick as the daemon evaluates it, on the real repository
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(SWEEP_PARTITIONS_NAME, KEYS)
        inst.report_runless_asset_event(dg.AssetMaterialization("lens_catalog"))
        with dg.build_schedule_context(instance=inst, scheduled_execution_time=TICK,
                                       repository_def=defs.get_repository_def()) as ctx:
            data = sched.evaluate_tick(ctx)
    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in data.run_requests] == [(KEYS[0], KEYS[BATCH_PARTITIONS - 1])]


def test_skips_without_the_lens_catalog(instance):
    res = _tick(instance)
    assert isinstance(res, dg.SkipReason) and "lens_catalog" in res.skip_message


def test_backfills_missing_partitions_in_bounded_batches(instance):
    assert len(KEYS) > BATCH_PARTITIONS
    instance.report_runless_asset_event(dg.AssetMaterialization("lens_catalog"))
    # partition 1 done for both assets, partition 2 only for sweep_catalog (so still missing)
    _materialised(instance, "sweep_catalog", KEYS[1:3])
    _materialised(instance, "negative_pool", KEYS[1:2])
    reqs = _tick(instance)
    covered = _covered(reqs)
    assert covered == [KEYS[0], KEYS[2], KEYS[3], KEYS[4]]  # the first BATCH missing, in partition order
    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in reqs] == [(KEYS[0], KEYS[0]), (KEYS[2], KEYS[4])]
    assert len({r.run_key for r in reqs}) == len(reqs) and all("20260102T0300" in r.run_key for r in reqs)
    assert [r.run_key for r in _tick(instance)] == [r.run_key for r in reqs]  # same tick, same keys: no duplicates


def test_in_flight_runs_are_not_requested_again(instance):
    instance.report_runless_asset_event(dg.AssetMaterialization("lens_catalog"))
    instance.add_run(dg.DagsterRun(job_name=sweeps_job.name, run_id="r1", status=dg.DagsterRunStatus.STARTED,
                                   tags={RANGE_START: KEYS[0], RANGE_END: KEYS[3]}))
    assert _covered(_tick(instance)) == KEYS[4:4 + BATCH_PARTITIONS]


def test_no_sweep_partition_yet_skips():
    with dg.instance_for_test() as inst:
        inst.report_runless_asset_event(dg.AssetMaterialization("lens_catalog"))
        res = _tick(inst)
    assert isinstance(res, dg.SkipReason) and "sweep_discovery_sensor" in res.skip_message


def test_a_discovered_sweep_joins_the_next_batch(instance):
    """A sweep file found later (added after the others) is backfilled like the rest."""
    instance.report_runless_asset_event(dg.AssetMaterialization("lens_catalog"))
    for asset in ("sweep_catalog", "negative_pool"):
        _materialised(instance, asset, KEYS)
    new = "sweep-000p000-010p005.fits"
    instance.add_dynamic_partitions(SWEEP_PARTITIONS_NAME, [new])
    (req,) = _tick(instance)
    assert (req.tags[RANGE_START], req.tags[RANGE_END]) == (new, new) and new in req.run_key


def test_nothing_missing_skips(instance):
    instance.report_runless_asset_event(dg.AssetMaterialization("lens_catalog"))
    for asset in ("sweep_catalog", "negative_pool"):
        _materialised(instance, asset, KEYS)
    assert missing_sweep_partitions(instance) == []
    assert isinstance(_tick(instance), dg.SkipReason)


def test_contiguous_ranges():
    keys = list("abcdef")
    assert contiguous_ranges(["a", "b", "d", "f", "e"], keys) == [("a", "b"), ("d", "f")]
    assert contiguous_ranges([], keys) == []
