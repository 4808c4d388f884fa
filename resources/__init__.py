"""Dagster resources of lensaudit: they configure engines, they hold no science."""

from resources.cutout_source import CutoutSourceResource
from resources.device import DeviceResource
from resources.settings import LensauditSettings
from resources.spark import EmrSettings, SparkResource
from resources.sweeps import SweepSource, discover_sweep_partitions

__all__ = ["CutoutSourceResource", "DeviceResource", "LensauditSettings", "SparkResource", "EmrSettings", "SweepSource", "discover_sweep_partitions"]
