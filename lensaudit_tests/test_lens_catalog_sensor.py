"""The lens catalogue's fingerprint and the sensor that re-materialises ``lens_catalog`` and
its downstream data half when the fingerprint changes."""

import dagster as dg
import pandas as pd
import pytest

from assets.automation import (FINGERPRINT_TAG, RANGE_END, RANGE_START, lens_catalog_version_sensor, main_job,
                               recorded_fingerprint)
from assets.catalogs import FINGERPRINT_KEY, lens_catalog
from assets.sweeps import SWEEP_PARTITIONS_NAME
from lensaudit.catalogs import lenscat_catalog
from lensaudit.catalogs.version import catalogue_fingerprint, lenscat_version, table_sha256
from lensaudit.lens_catalog_table import lens_catalog_table
from lensaudit.config import get_profile
from resources.settings import LensauditSettings
from resources.sweeps import SweepSource, discover_sweep_partitions

KEYS = discover_sweep_partitions("mock")
#: lens_catalog and its downstream before the detector (the data half of `lensaudit materialize`)
DATA_HALF = {"lens_catalog", "positives", "negative_pool", "spatial_splits", "training_manifest", "cutouts",
             "shortcut_features", "injection_realism", "injection_hosts"}


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(SWEEP_PARTITIONS_NAME, KEYS)  # what sweep_discovery_sensor adds
        yield inst


@pytest.fixture
def resources(tmp_path):
    return {"settings": LensauditSettings(home=str(tmp_path / "home"), profile="tiny"), "sweeps": SweepSource()}


def _tick(instance, resources):
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        return lens_catalog_version_sensor(ctx)


def _regraded(real: pd.DataFrame) -> pd.DataFrame:
    """lenscat as a new release might ship it: one confident galaxy-scale lens in the
    footprint downgraded to probable."""
    cat, _ = lenscat_catalog.galaxy_lenses(real)
    lens_id = cat.loc[cat["grading"] == "confident", "lens_id"].iloc[0]
    out = real.copy()
    out.loc[out["lens_id"] == lens_id, "grading"] = "probable"
    return out


# ---- the fingerprint (no Dagster) ----------------------------------------------------------

def test_fingerprint_follows_the_table_values(lenscat_all):
    table, counts = lens_catalog_table(get_profile("demo").mock)  # demo: lenscat + the mock supplement
    assert counts["kept"] == len(table) and table["lens_id"].str.startswith("mock_").any()
    fp = catalogue_fingerprint(table)
    assert fp == f"lenscat=={lenscat_version()};sha256={table_sha256(table)}" and len(table_sha256(table)) == 64
    assert catalogue_fingerprint(table.copy()) == fp  # values, not object identity
    assert table_sha256(lens_catalog_table(None)[0]) != table_sha256(table)  # real sweeps: no mock supplement
    assert table_sha256(lens_catalog_table(get_profile("tiny").mock)[0]) != table_sha256(table)  # tiny: none either
    moved = table.copy()
    moved.loc[0, "ra"] = float(moved.loc[0, "ra"]) + 1e-9  # a sub-milliarcsecond move is a new catalogue
    assert table_sha256(moved) != table_sha256(table)
    assert table_sha256(table.drop(columns=["sample_weight"])) != table_sha256(table)
    with pytest.raises(ValueError, match="table with columns"):
        table_sha256(pd.DataFrame())


def test_lens_catalog_code_version_reaches_the_table_builder():
    from assets._versions import code_closure, compute_fn

    closure = code_closure(compute_fn(lens_catalog))
    assert {"mod:lensaudit.lens_catalog_table", "mod:lensaudit.catalogs.lenscat_catalog",
            "mod:lensaudit.mock.lens_supplement", "mod:lensaudit.catalogs.version"} <= set(closure)


# ---- the sensor ----------------------------------------------------------------------------

def test_sensor_is_registered_off_by_default_on_the_data_half_job():
    from definitions import defs

    sensor = defs.resolve_sensor_def("lens_catalog_version_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == main_job.name == "lensaudit_main"
    job = defs.resolve_job_def("lensaudit_main")
    assert DATA_HALF <= {k.to_user_string() for k in job.asset_layer.executable_asset_keys}


def test_never_materialised_requests_the_lens_catalog(instance, resources):
    req = _tick(instance, resources)
    assert isinstance(req, dg.RunRequest)
    fp = req.tags[FINGERPRINT_TAG]
    assert req.run_key == f"never->{fp}" and fp.startswith(f"lenscat=={lenscat_version()};sha256=")
    # no sweep partition is built yet: only lens_catalog can run (the schedule builds the sweeps)
    assert req.asset_selection == [lens_catalog.key] and RANGE_START not in req.tags
    assert _tick(instance, resources).run_key == req.run_key  # a re-tick asks for the same run: no duplicate


def test_same_fingerprint_skips_then_a_new_catalogue_requests_the_data_half(instance, resources, monkeypatch):
    # materialise the real asset: it records the fingerprint the sensor computes
    result = dg.materialize([lens_catalog], instance=instance, resources=resources)
    assert result.success
    recorded = recorded_fingerprint(instance)
    assert recorded and recorded == catalogue_fingerprint(
        pd.read_parquet(resources["settings"].home_path() / "assets" / "lens_catalog" / "data.parquet"))
    skip = _tick(instance, resources)
    assert isinstance(skip, dg.SkipReason) and recorded in skip.skip_message

    # the tiny profile's four sweeps are built
    for k in KEYS[:4]:
        instance.report_runless_asset_event(dg.AssetMaterialization("sweep_catalog", partition=k))
    real = lenscat_catalog.load_lenscat()
    monkeypatch.setattr(lenscat_catalog, "load_lenscat", lambda: _regraded(real))
    req = _tick(instance, resources)
    assert isinstance(req, dg.RunRequest)
    new = req.tags[FINGERPRINT_TAG]
    assert new != recorded and req.run_key == f"{recorded}->{new}"
    assert {k.to_user_string() for k in req.asset_selection} == DATA_HALF
    assert (req.tags[RANGE_START], req.tags[RANGE_END]) == (KEYS[0], KEYS[3])
    assert _tick(instance, resources).run_key == req.run_key  # re-ticks: same key, the daemon launches it once

    # once the new catalogue is materialised, the sensor is quiet again
    assert dg.materialize([lens_catalog], instance=instance, resources=resources).success
    assert recorded_fingerprint(instance) == new and isinstance(_tick(instance, resources), dg.SkipReason)


def test_gaps_in_the_built_sweeps_join_sweep_catalog(instance, resources):
    instance.report_runless_asset_event(dg.AssetMaterialization("lens_catalog", metadata={FINGERPRINT_KEY: "old"}))
    for k in (KEYS[1], KEYS[4]):
        instance.report_runless_asset_event(dg.AssetMaterialization("sweep_catalog", partition=k))
    req = _tick(instance, resources)
    assert req.run_key.startswith("old->")
    assert {k.to_user_string() for k in req.asset_selection} == DATA_HALF | {"sweep_catalog"}
    assert (req.tags[RANGE_START], req.tags[RANGE_END]) == (KEYS[1], KEYS[4])


def test_a_tick_on_the_real_repository(instance, resources):
    from definitions import defs

    sensor = defs.resolve_sensor_def("lens_catalog_version_sensor")
    for k in KEYS[:2]:
        instance.report_runless_asset_event(dg.AssetMaterialization("sweep_catalog", partition=k))
    with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as ctx:
        data = sensor.evaluate_tick(ctx)
    (req,) = data.run_requests
    assert req.job_name in (None, "lensaudit_main")
    assert {k.to_user_string() for k in req.asset_selection} == DATA_HALF
    # the job accepts that selection (the daemon subsets it the same way)
    sub = defs.resolve_job_def("lensaudit_main").get_subset(asset_selection=set(req.asset_selection))
    assert {k.to_user_string() for k in sub.asset_layer.executable_asset_keys} == DATA_HALF
