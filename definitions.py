"""The lensaudit code location (loaded by workspace.yaml from the project root)."""


import dagster as dg

from assets import ALL_ASSETS, ALL_CHECKS
from resources import LensauditSettings, SparkResource, SweepSource

import os

main_job = dg.define_asset_job("lensaudit_main", selection=dg.AssetSelection.all(), description="the whole audit")

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[main_job],
    resources={
        "settings": LensauditSettings.from_env(),
        "spark": SparkResource(mode=os.environ.get("LENSAUDIT_SPARK_MODE", "local")),
        "sweeps": SweepSource(location=os.environ.get("LENSAUDIT_SWEEPS", "mock")),
    },
)
