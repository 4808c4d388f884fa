"""Dagster assets of lensaudit, one module per asset group; checks sit beside their assets."""

from assets.detector import ARCH_PARTITIONS, detector, detector_evaluation
from assets.selection import audit_report, completeness_table, failure_modes, injection_hosts
from assets.injection import injection_realism
from assets.cutouts import cutouts, shortcut_features
from assets.catalogs import lens_catalog, positives
from assets.manifest import training_manifest
from assets.negatives import negative_pool
from assets.splits import spatial_splits
from assets.sweeps import SWEEP_PARTITIONS, sweep_catalog
from assets._wiring import checks_for

from assets._versions import with_code_versions

ALL_ASSETS = with_code_versions([lens_catalog, sweep_catalog, positives, negative_pool, spatial_splits, training_manifest, cutouts,
              shortcut_features, injection_realism, detector, detector_evaluation, injection_hosts,
              completeness_table, failure_modes, audit_report])
# derived from the gate registry: one multi-asset check per asset that has gates
ALL_CHECKS = [chk for a in ALL_ASSETS for chk in checks_for(a.key.to_user_string())]

__all__ = ["ALL_ASSETS", "ALL_CHECKS", "SWEEP_PARTITIONS", "ARCH_PARTITIONS"]
