"""Dagster assets of lensaudit, one module per asset group; checks sit beside their assets."""

from assets.detector import ARCH_PARTITIONS, detector, detector_evaluation, detector_evaluation_checks
from assets.selection import (audit_report, completeness_table, completeness_table_checks, failure_modes,
                              injection_hosts, injection_hosts_checks)
from assets.injection import injection_realism, injection_realism_checks
from assets.cutouts import cutouts, cutouts_checks, shortcut_features, shortcut_features_checks
from assets.catalogs import lens_catalog, lens_catalog_checks, positives, positives_checks
from assets.manifest import training_manifest, training_manifest_checks
from assets.negatives import negative_pool, negative_pool_checks
from assets.splits import spatial_splits, spatial_splits_checks
from assets.sweeps import SWEEP_PARTITIONS, sweep_catalog, sweep_catalog_checks

from assets._versions import with_code_versions

ALL_ASSETS = with_code_versions([lens_catalog, sweep_catalog, positives, negative_pool, spatial_splits, training_manifest, cutouts,
              shortcut_features, injection_realism, detector, detector_evaluation, injection_hosts,
              completeness_table, failure_modes, audit_report])
ALL_CHECKS = [*lens_catalog_checks, *sweep_catalog_checks, *positives_checks, *negative_pool_checks,
              *spatial_splits_checks, *training_manifest_checks, *cutouts_checks, *shortcut_features_checks,
              *injection_realism_checks, *detector_evaluation_checks, *injection_hosts_checks,
              *completeness_table_checks]

__all__ = ["ALL_ASSETS", "ALL_CHECKS", "SWEEP_PARTITIONS", "ARCH_PARTITIONS"]
