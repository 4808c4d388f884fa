"""Declared column schemas of every tabular asset (names, Arrow types, units).

The schemas of tables a Spark job writes live with that job (``lensaudit.spark_jobs``) and
are collected here; the assets publish these as Dagster TableSchema metadata and the ``*_schema`` checks
compare what was stored with them.  Side tables (``*_unmatched``, ``*_filter_counts``,
``*_shortfalls``) live in their own asset folders so that reading an asset's folder
returns only that asset's rows; ``SIDE_TABLES`` declares each of them once, with the asset
that writes it (shown in the asset's Dagster metadata, hashed in its materialisation metadata)
and ``readable_table`` is the only door the gates' ``StoreView`` reads through.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from lensaudit.arrow_fields import described as _f
from lensaudit.spark_jobs.cutouts import INDEX_SCHEMA, SHORTCUT_FEATURES_SCHEMA
from lensaudit.spark_jobs.manifest import EXCLUDED_POSITIVES_SCHEMA, MANIFEST_SCHEMA, SHORTFALL_SCHEMA
from lensaudit.spark_jobs.negatives import COUNTS_SCHEMA, pool_table_schema
from lensaudit.spark_jobs.positives import POSITIVES_SCHEMA, UNMATCHED_SCHEMA
from lensaudit.spark_jobs.sweeps import sweep_table_schema
from lensaudit.spec import OPERATING_POINTS, PRIMARY
from lensaudit.survey.instrument import BANDS


LENS_CATALOG_SCHEMA = pa.schema([
    _f("lens_id", pa.string(), "lenscat_<row> (lenscat names repeat)"),
    _f("lens_name", pa.string(), "lenscat name"),
    _f("ra", pa.float64(), "right ascension [deg]"),
    _f("dec", pa.float64(), "declination [deg]"),
    _f("zlens", pa.string(), "lens redshift as given by lenscat (may be '-' or 'measured')"),
    _f("lens_type", pa.string(), "lenscat type (galaxy here)"),
    _f("grading", pa.string(), "confident or probable"),
    _f("ref", pa.string(), "discovery reference"),
    _f("tier", pa.string(), "A = confident, B = probable"),
    _f("sample_weight", pa.float64(), "loss weight: 1.0 (A), 0.5 (B)"),
])

SPLITS_SCHEMA = pa.schema([
    _f("galaxy_id", pa.string(), "<brickname>_<objid>"),
    _f("ra", pa.float64(), "right ascension [deg]"),
    _f("dec", pa.float64(), "declination [deg]"),
    _f("healpix_128", pa.int64(), "HEALPix nside 128 nested pixel"),
    _f("split", pa.string(), "train / val / test"),
    _f("role", pa.string(), "positive or negative"),
])

_PARAMS = ["theta_e_arcsec", "e1", "e2", "gamma1", "gamma2", "center_x_arcsec", "center_y_arcsec", "src_x_arcsec",
           "src_y_arcsec", "src_r_sersic_arcsec", "src_n_sersic", "src_e1", "src_e2", "src_mag_r", "src_mag_g",
           "src_mag_z", "psf_fwhm_g_arcsec", "psf_fwhm_r_arcsec", "psf_fwhm_z_arcsec", "moffat_beta"]
INJECTION_REALISM_SCHEMA = pa.schema(
    [_f("kind", pa.string(), "injected (into a test-split negative host) or real (a lens cutout)"),
     _f("galaxy_id", pa.string(), "host or lens <brickname>_<objid>")]
    + [_f(k, pa.float64(), "injection parameter (lensaudit.injection.params; NaN for real lenses)") for k in _PARAMS]
    + [_f(f"snr_{b}", pa.float64(), f"unclipped integrated arc annulus S/N in {b}, N(0, 1) on pure noise "
          "(lensaudit.injection.realism)") for b in BANDS]
    + [_f("snr_combined", pa.float64(), "sum of the band S/N / sqrt(number of bands), N(0, 1) on pure noise")]
    + [_f(f"{k}_{b}_nmgy", pa.float64(), d.format(b=b)) for b in BANDS for k, d in (
        ("flux", "host-subtracted annulus flux in {b} (residual over the ring median, unclipped) [nmgy]"),
        ("flux_err", "1-sigma noise of flux_{b}_nmgy [nmgy]"))]
    + [_f(f"arc_flux_{b}_nmgy", pa.float64(), f"arc-only flux in {b} [nmgy]: flux_{b}_nmgy of the injected stamp minus "
          f"that of its host (NaN for real lenses, whose arc-only flux is flux_{b}_nmgy)") for b in BANDS]
    + [_f("colour_g_r", pa.float64(), "arc-only g-r [AB mag]: from arc_flux (injections), flux (real lenses)"),
       _f("colour_r_z", pa.float64(), "arc-only r-z [AB mag]: from arc_flux (injections), flux (real lenses)"),
       _f("colour_g_r_err", pa.float64(), "1-sigma error of colour_g_r from flux_err [mag]"),
       _f("colour_r_z_err", pa.float64(), "1-sigma error of colour_r_z from flux_err [mag]"),
       _f("magnification", pa.float64(), "lensed / unlensed source flux (NaN for real lenses)"),
       _f("arc_snr_matched", pa.float64(), "combined matched-filter S/N of the noise-free arc against the host's noise "
          "(lensaudit.injection.visibility; observable at >= 20; NaN for real lenses)")])

SCHEMAS: dict[str, pa.Schema] = {
    "lens_catalog": LENS_CATALOG_SCHEMA,
    "sweep_catalog": sweep_table_schema(),
    "positives": POSITIVES_SCHEMA,
    "positives_unmatched": UNMATCHED_SCHEMA,
    "negative_pool": pool_table_schema(),
    "negative_pool_filter_counts": COUNTS_SCHEMA,
    "spatial_splits": SPLITS_SCHEMA,
    "training_manifest": MANIFEST_SCHEMA,
    "training_manifest_shortfalls": SHORTFALL_SCHEMA,
    "cutouts": INDEX_SCHEMA,
    "shortcut_features": SHORTCUT_FEATURES_SCHEMA,
    "injection_realism": INJECTION_REALISM_SCHEMA,
}


#: the asset keys of the graph (``assets.ALL_ASSETS``; ``test_side_tables`` keeps the two equal)
ASSETS: tuple[str, ...] = (
    "lens_catalog", "sweep_catalog", "positives", "negative_pool", "spatial_splits", "training_manifest", "cutouts",
    "shortcut_features", "injection_realism", "detector", "detector_evaluation", "injection_hosts",
    "completeness_table", "failure_modes", "audit_report")


#: each asset's direct upstream assets (the graph's edges; ``test_side_tables`` keeps them the Dagster graph's)
ASSET_DEPS: dict[str, tuple[str, ...]] = {
    "lens_catalog": (), "sweep_catalog": (), "positives": ("lens_catalog", "sweep_catalog"),
    "negative_pool": ("lens_catalog", "sweep_catalog"), "spatial_splits": ("negative_pool", "positives"),
    "training_manifest": ("spatial_splits",), "cutouts": ("training_manifest",), "shortcut_features": ("cutouts",),
    "injection_realism": ("cutouts",), "detector": ("cutouts",), "detector_evaluation": ("detector", "shortcut_features"),
    "injection_hosts": ("cutouts",), "completeness_table": ("detector_evaluation", "injection_hosts", "injection_realism"),
    "failure_modes": ("completeness_table",), "audit_report": ("failure_modes",)}


def downstream_assets(asset: str) -> list[str]:
    """Every asset that reads ``asset``, directly or through others (``ASSET_DEPS``), in ``ASSETS`` order."""
    found: set[str] = set()
    frontier = [asset]
    while frontier:
        a = frontier.pop()
        for child, parents in ASSET_DEPS.items():
            if a in parents and child not in found:
                found.add(child)
                frontier.append(child)
    return [a for a in ASSETS if a in found]


def table_asset(point_name: str) -> str:
    """The folder of the completeness table at an operating point (the primary one is the asset)."""
    return "completeness_table" if point_name == PRIMARY.name else f"completeness_table_{point_name}"


@dataclass(frozen=True)
class SideTable:
    """A table an asset writes in its own folder beside its main output (not a Dagster asset)."""

    name: str
    asset: str  # the asset whose materialisation writes it
    description: str
    schema: pa.Schema | None = None  # its declared column schema, where one exists


_SIDE = [
    SideTable("positives_unmatched", "positives", "lenses without a primary Tractor match, with the reason",
              UNMATCHED_SCHEMA),
    SideTable("negative_pool_filter_counts", "negative_pool", "rows removed per cut and pool, one file per sweep",
              COUNTS_SCHEMA),
    SideTable("training_manifest_shortfalls", "training_manifest", "negatives wanted vs found per stratum",
              SHORTFALL_SCHEMA),
    SideTable("training_manifest_excluded_positives", "training_manifest",
              "positives outside the negatives' sky/type domain, with the reason", EXCLUDED_POSITIVES_SCHEMA),
    SideTable("injection_realism_arc_noise", "injection_realism",
              "per-pixel noise-normalised residuals inside the arc footprints, per band"),
    SideTable("injection_host_bins", "injection_hosts", "hosts per (PSF, depth) bin of the completeness grid"),
    SideTable("completeness_injections", "completeness_table", "every injection's record and score"),
    *[SideTable(table_asset(p.name), "completeness_table",
                f"the completeness table at the operating point FPR {p.target_fpr:g}")
      for p in OPERATING_POINTS if p != PRIMARY],
    SideTable("completeness_brackets", "completeness_table",
              "completeness brackets of the detectability decomposition"),
    SideTable("completeness_bracket_records", "completeness_table",
              "every bracket re-injection's record and score, per variant (what the brackets are recomputed from)"),
    SideTable("adversarial_scores", "completeness_table", "logits before / after each adversarial test"),
    SideTable("failure_missed_injections", "failure_modes", "every missed injection with its cause"),
]
SIDE_TABLES: dict[str, SideTable] = {t.name: t for t in _SIDE}


def side_tables_of(asset: str) -> list[SideTable]:
    """The side tables ``asset`` writes, in declaration order."""
    return [t for t in _SIDE if t.asset == asset]


class UndeclaredTableError(ValueError):
    """A table read that is neither an asset nor a declared side table."""


def read_table(home, name: str, columns: list[str] | None = None):
    """The rows (a pandas DataFrame) of an asset or of a declared side table under ``home``;
    ``UndeclaredTableError`` for any other name (``readable_table``), FileNotFoundError when it has
    no data.  The one reader of stored tables for the science, the gates and the assets
    (``lensaudit.store.read_asset`` below it knows no names)."""
    from lensaudit.store import read_asset

    return read_asset(home, readable_table(name), columns=columns)


def readable_table(name: str) -> str:
    """``name`` if it is an asset or a declared side table; ``UndeclaredTableError`` otherwise."""
    if name in ASSETS or name in SIDE_TABLES:
        return name
    raise UndeclaredTableError(f"table {name!r} is neither an asset nor a side table declared in "
                               "lensaudit.tables.SIDE_TABLES (declare it with the asset that writes it)")
