"""Known lenses: ``lens_catalog`` (lenscat) and ``positives`` (crossmatch on Spark)."""

import dagster as dg

from assets._wiring import json_meta, png_metadata, raise_on_failed_tasks, schema_metadata, side_table_files_metadata
from assets.sweeps import sweep_catalog
from lensaudit.catalogs.lenscat_catalog import SAMPLE_WEIGHT_OF_TIER
from lensaudit.catalogs.version import catalogue_fingerprint, lenscat_version
from lensaudit.lens_catalog_table import lens_catalog_table
from lensaudit.mock.config import MockSkyConfig
from lensaudit.mock.lens_supplement import is_mock_lens
from lensaudit.spark_jobs.entrypoint import positives_job
from lensaudit.plots import separation_histogram
from lensaudit.spec import DATA
from lensaudit.store import asset_files, partition_file, safe_join, write_parquet_atomic
from lensaudit.tables import LENS_CATALOG_SCHEMA
from resources.settings import LensauditSettings
from resources.spark import SparkResource
from resources.sweeps import SweepSource

#: the metadata key under which ``lens_catalog`` records its catalogue fingerprint (read by the sensor)
FINGERPRINT_KEY = "lens_catalog_fingerprint"


def mock_sky_of(settings: LensauditSettings, sweeps: SweepSource) -> MockSkyConfig | None:
    """The mock sky whose lens supplement joins lenscat (None when the sweeps are real, the run's
    data configuration's included)."""
    return settings.profile_obj().mock if sweeps.with_data(settings.data()).is_mock else None


@dg.asset(group_name="catalogs", kinds={"pandas", "parquet"}, metadata=schema_metadata("lens_catalog"),
          description="Galaxy-scale lenscat lenses in the DECam footprint (plus the mock sky's own known lenses when "
                      "the sweeps are the mock); tier A = confident (sample weight "
                      f"{SAMPLE_WEIGHT_OF_TIER['A']:g}), B = probable ({SAMPLE_WEIGHT_OF_TIER['B']:g}); removal counters "
                      "in metadata.")
def lens_catalog(context: dg.AssetExecutionContext, settings: LensauditSettings, sweeps: SweepSource) -> dg.MaterializeResult:
    cat, counts = lens_catalog_table(mock_sky_of(settings, sweeps))
    out = safe_join(settings.home_path(), "assets", "lens_catalog", "data.parquet")
    write_parquet_atomic(cat[LENS_CATALOG_SCHEMA.names], out, schema=LENS_CATALOG_SCHEMA)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(cat), "counters": json_meta(counts), "path": str(out),
        "tiers": json_meta(cat["tier"].value_counts().to_dict()),
        "lenscat_version": lenscat_version(),
        FINGERPRINT_KEY: catalogue_fingerprint(cat),
        "mock_lenses": int(is_mock_lens(cat["lens_id"]).sum()),
    })

@dg.asset(group_name="catalogs", kinds={"spark", "parquet"}, deps=[lens_catalog, sweep_catalog],
          metadata=schema_metadata("positives"),
          description=f"Nearest primary Tractor row within {DATA.match_radius_arcsec:g}\" of each lens, one Spark "
                      "task per sweep; unmatched lenses with a reason in positives_unmatched.")
def positives(context: dg.AssetExecutionContext, settings: LensauditSettings, spark: SparkResource) -> dg.MaterializeResult:
    home = settings.home_path()
    profile = settings.profile_obj()
    sweeps = {f.stem + ".fits": str(f) for f in asset_files(home, "sweep_catalog")}
    if not sweeps:
        raise dg.Failure("positives: no sweep_catalog partition is materialised")
    out = partition_file(home, "positives", "data")
    out_un = partition_file(home, "positives_unmatched", "data")
    summary = spark.run(context, positives_job, sweep_files=sweeps,
                        lens_catalog=str(partition_file(home, "lens_catalog", "data")),
                        radius_arcsec=profile.match_radius_arcsec, out_matched=str(out), out_unmatched=str(out_un))
    raise_on_failed_tasks(summary, "positives crossmatch")
    import pandas as pd

    matched = pd.read_parquet(out, columns=["sep_arcsec", "tier"])
    unmatched = pd.read_parquet(out_un, columns=["reason"])
    sep = matched["sep_arcsec"]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(matched), "path": str(out), "unmatched_path": str(out_un),
        "covered_lenses": summary["covered"],
        "match_rate_covered": (len(matched) / summary["covered"]) if summary["covered"] else float("nan"),
        "unmatched_by_reason": json_meta(unmatched["reason"].value_counts().to_dict()),
        "tiers": json_meta(matched["tier"].value_counts().to_dict()),
        "sep_arcsec_quantiles": json_meta({q: float(sep.quantile(q)) for q in (0.1, 0.5, 0.9, 1.0)} if len(sep) else {}),
        "sweeps_searched": len(sweeps),
        "separation_histogram": png_metadata(separation_histogram(sep.to_numpy(), profile.match_radius_arcsec),
                                             safe_join(home, "plots", "positives_separation.png")),
        **side_table_files_metadata(home, "positives"),
    })

