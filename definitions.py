"""The lensaudit code location (loaded by workspace.yaml from the project root).

In the UI (``dagster dev -w workspace.yaml``, with DAGSTER_HOME holding dagster.yaml):
"Materialize all" launches an asset backfill whose runs follow the dependencies (the detector
waits for every cutouts partition), one run at a time (dagster.yaml's run queue).  The
profile and the store are chosen per run in the launchpad::

    resources: {settings: {config: {profile: tiny, home: /path/to/lensaudit_home}}}

and otherwise resolved when the run executes (see resources/settings.py).  A real-data
configuration is chosen the same way, ``settings: {config: {data_config: configs/dr10_south.yaml}}``
(else $LENSAUDIT_DATA_CONFIG at run time): its sweep and cutout locations replace those below.  The sweep source
(LENSAUDIT_SWEEPS: mock, a directory, an http(s):// mirror or an s3:// prefix) configures the
``sweeps`` resource; nothing is listed at load: the sweep partitions are dynamic, added by
``sweep_discovery_sensor`` (on by default, the daemon of ``dagster dev`` ticks it) and by
``lensaudit materialize``.
"""


import os

import dagster as dg
import yaml

from assets import ALL_ASSETS, ALL_CHECKS, ARCH_PARTITIONS
from assets.automation import (architecture_partitions_sensor, lens_catalog_version_sensor, main_job,
                               sweep_backfill_schedule, sweep_discovery_sensor, sweeps_job)
from assets.external import external_detector_job
from lensaudit.numpy_pages import no_hugepage_advice
from resources import CutoutSourceResource, DeviceResource, EmrSettings, LensauditSettings, SparkResource, SweepSource

no_hugepage_advice()  # in the UI's run processes too, as in the CLI (lensaudit/numpy_pages.py)


def _spark_resource() -> SparkResource:
    """local[*] by default; LENSAUDIT_SPARK_MODE=emr with LENSAUDIT_EMR_CONFIG=<yaml of EmrSettings>."""
    mode = os.environ.get("LENSAUDIT_SPARK_MODE", "local")
    cfg_path = os.environ.get("LENSAUDIT_EMR_CONFIG")
    emr = EmrSettings()
    if cfg_path:
        with open(cfg_path) as f:
            emr = EmrSettings(**(yaml.safe_load(f) or {}))
    return SparkResource(mode=mode, emr=emr)


# Dagster runs one partitions definition per job: the architecture-partitioned detector
# assets get their own job; the data half's `main_job` is defined in assets/automation.py
# (the lens catalogue sensor targets it).
detector_job = dg.define_asset_job("lensaudit_detector", selection=dg.AssetSelection.groups("detector"),
                                   partitions_def=ARCH_PARTITIONS, description="train and evaluate one architecture")

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[main_job, detector_job, sweeps_job, external_detector_job],
    schedules=[sweep_backfill_schedule],
    sensors=[sweep_discovery_sensor, architecture_partitions_sensor, lens_catalog_version_sensor],
    resources={
        # home and profile are resolved when a run executes (launchpad: resources.settings.config)
        "settings": LensauditSettings(),
        "spark": _spark_resource(),
        "sweeps": SweepSource(location=os.environ.get("LENSAUDIT_SWEEPS", "mock")),
        "device": DeviceResource(device=os.environ.get("LENSAUDIT_DEVICE", "auto")),
        "cutout_source": CutoutSourceResource(kind=os.environ.get("LENSAUDIT_CUTOUT_SOURCE", "mock"),
                                              location=os.environ.get("LENSAUDIT_CUTOUT_LOCATION", "")),
    },
)
