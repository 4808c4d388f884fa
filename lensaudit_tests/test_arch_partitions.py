"""The detector's partitions are the architectures of the home's profile (dynamic, as the sweeps):
``architecture_partitions_sensor`` adds them tick by tick and ``lensaudit materialize`` before it
plans, so the UI's "Materialize all" trains what the CLI trains (``test_dagster_backfill``)."""

import json

import dagster as dg
import pytest

from assets.automation import architecture_partitions_sensor
from assets.detector import ARCH_PARTITIONS, ARCH_PARTITIONS_NAME, register_arch_partitions
from lensaudit.config import RUN_PROFILE_FILE, get_profile
from lensaudit_tests._sensor_ticks import partition_tick
from resources.settings import LensauditSettings


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _tick(instance, home):
    """One evaluation as the daemon runs it, its partition requests applied as the daemon does."""
    return partition_tick(architecture_partitions_sensor, instance, {"settings": LensauditSettings(home=str(home))},
                          ARCH_PARTITIONS_NAME)


def test_the_detector_assets_are_partitioned_by_the_dynamic_architectures():
    from definitions import defs

    graph = defs.resolve_asset_graph()
    for asset in ("detector", "detector_evaluation"):
        assert graph.get(dg.AssetKey(asset)).partitions_def == ARCH_PARTITIONS
    assert isinstance(ARCH_PARTITIONS, dg.DynamicPartitionsDefinition)
    sensor = defs.resolve_sensor_def("architecture_partitions_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_job_def("lensaudit_detector").partitions_def == ARCH_PARTITIONS


def test_the_sensor_adds_the_profile_s_architectures_once(instance, tmp_path, monkeypatch):
    monkeypatch.delenv("LENSAUDIT_PROFILE", raising=False)
    (tmp_path / RUN_PROFILE_FILE).write_text(json.dumps({"profile": "tiny"}))
    added, skip = _tick(instance, tmp_path)
    assert added == list(get_profile("tiny").detector.archs) == ["resnet18"]
    added, skip = _tick(instance, tmp_path)
    assert added == [] and "every architecture" in skip
    assert instance.get_dynamic_partitions(ARCH_PARTITIONS_NAME) == ["resnet18"]


def test_a_broken_run_record_fails_the_tick(instance, tmp_path):
    (tmp_path / RUN_PROFILE_FILE).write_text(json.dumps({"profile": "nope"}))
    with pytest.raises(Exception, match="nope"):
        _tick(instance, tmp_path)
    assert instance.get_dynamic_partitions(ARCH_PARTITIONS_NAME) == []


def test_materialize_registers_them_and_rejects_an_unknown_one(instance):
    assert register_arch_partitions(instance, ("resnet18",)) == ["resnet18"]
    assert register_arch_partitions(instance, ("resnet18", "efficientnet_b0")) == ["efficientnet_b0"]
    assert instance.get_dynamic_partitions(ARCH_PARTITIONS_NAME) == ["resnet18", "efficientnet_b0"]
    with pytest.raises(ValueError, match="resnet50"):
        register_arch_partitions(instance, ("resnet50",))
    assert instance.get_dynamic_partitions(ARCH_PARTITIONS_NAME) == ["resnet18", "efficientnet_b0"]


def test_materialize_plans_one_detector_run_per_registered_architecture(instance):
    """``plan_runs`` gives the detector runs of the profile's architectures, each a partition the
    instance knows (a run of an unknown dynamic partition would be refused)."""
    from definitions import defs
    from lensaudit_cli.main import plan_runs

    keys = {dg.AssetKey("detector"), dg.AssetKey("detector_evaluation")}
    register_arch_partitions(instance, get_profile("demo").detector.archs)
    runs = plan_runs(defs, keys, "demo", None)
    parts = [t["dagster/partition"] for _, t in runs]
    assert parts == list(get_profile("demo").detector.archs)
    assert all(instance.has_dynamic_partition(ARCH_PARTITIONS_NAME, p) for p in parts)


def test_a_partition_added_by_hand_that_names_no_architecture_fails_before_any_read(tmp_path):
    """The planted fault: "Add partition" in the UI with a typo; the run fails naming the choices."""
    from lensaudit.detector.run import train_detector

    with pytest.raises(ValueError, match=r"'resnet50'.*resnet18"):
        train_detector(tmp_path, get_profile("tiny"), "resnet50", "cpu", manifest=None, index=None)
