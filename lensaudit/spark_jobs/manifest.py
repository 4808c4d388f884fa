"""The stratified training manifest on Spark (``training_manifest`` asset).

Plan on counts (``lensaudit.sampling.stratify``), select on Spark: inside each
(split, nobs_z_bin, type_bin, pool) rows are ordered by sha2("{galaxy_id}:{seed}", 256)
and the first K taken with a window ``row_number`` (never ``sample().limit()``).  A
galaxy chosen for N2 is not eligible for N1.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from lensaudit.catalogs.lenscat_catalog import SAMPLE_WEIGHT_OF_TIER
from lensaudit.sampling.stratify import (NOBS_Z_BINS, OTHER_TYPE, TYPE_BINS, nobs_z_bin, plan_n1, plan_n2, trim_n2,
                                         type_bin)

MANIFEST_FIELDS = [
    ("galaxy_id", pa.string(), "<brickname>_<objid> of the Tractor row"),
    ("ra", pa.float64(), "right ascension [deg]"),
    ("dec", pa.float64(), "declination [deg]"),
    ("label", pa.int8(), "1 = known lens (positive), 0 = negative"),
    ("tier", pa.string(), "A (lenscat confident), B (probable), N1, N2"),
    ("pool", pa.string(), "positive, N1 or N2"),
    ("confuser_category", pa.string(), "N2 proxy category ('' otherwise)"),
    ("split", pa.string(), "train / val / test (HEALPix nside 128 nested)"),
    ("sample_weight", pa.float64(), "loss weight: 1.0 tier A, 0.5 tier B, 1.0 negatives"),
    ("nobs_z", pa.int16(), "z-band exposures at the centre [count]"),
    ("nobs_z_bin", pa.string(), "1-2, 3-5, 6-10, 11+ (0 counted in 1-2)"),
    ("type", pa.string(), "Tractor TYPE"),
    ("type_bin", pa.string(), "SER, DEV, REX or OTHER"),
    ("healpix_128", pa.int64(), "HEALPix nside 128 nested pixel"),
    ("psfsize_r", pa.float32(), "r-band PSF FWHM [arcsec]"),
    ("psfdepth_r", pa.float32(), "r-band point-source depth, inverse variance [1/nmgy^2]"),
    ("galdepth_r", pa.float32(), "r-band galaxy depth, inverse variance [1/nmgy^2]"),
    ("ebv", pa.float32(), "Galactic E(B-V) [mag]"),
    ("brickname", pa.string(), "brick name"),
    ("selected_for_nobs_z_bin", pa.string(), "stratum bin the row was drawn for (differs from nobs_z_bin when backfilled)"),
    ("sweep", pa.string(), "sweep file of the row"),
    ("lens_id", pa.string(), "lenscat entry (positives; '' otherwise)"),
    ("confuser_flags", pa.string(), "every N2 proxy that holds, '|'-joined"),
    ("flux_g", pa.float32(), "g flux [nmgy]"),
    ("flux_r", pa.float32(), "r flux [nmgy]"),
    ("flux_z", pa.float32(), "z flux [nmgy]"),
    ("psfsize_g", pa.float32(), "g-band PSF FWHM [arcsec]"),
    ("psfsize_z", pa.float32(), "z-band PSF FWHM [arcsec]"),
    ("psfdepth_g", pa.float32(), "g-band point-source depth [1/nmgy^2]"),
    ("psfdepth_z", pa.float32(), "z-band point-source depth [1/nmgy^2]"),
]
MANIFEST_SCHEMA = pa.schema([pa.field(n, t, metadata={"description": d}) for n, t, d in MANIFEST_FIELDS])
SHORTFALL_SCHEMA = pa.schema([
    ("split", pa.string()), ("nobs_z_bin", pa.string()), ("type_bin", pa.string()), ("n_positives", pa.int64()),
    ("target", pa.int64()), ("n2_selected", pa.int64()), ("n1_selected_own", pa.int64()),
    ("n1_backfilled", pa.int64()), ("backfill_from", pa.string()), ("shortfall", pa.int64()), ("reason", pa.string()),
])

EXCLUDED_POSITIVES_SCHEMA = pa.schema([
    pa.field("galaxy_id", pa.string(), metadata={"description": "<brickname>_<objid> of the matched Tractor row"}),
    pa.field("lens_id", pa.string(), metadata={"description": "lenscat entry"}),
    pa.field("tier", pa.string(), metadata={"description": "A or B"}),
    pa.field("split", pa.string(), metadata={"description": "train / val / test"}),
    pa.field("ra", pa.float64(), metadata={"description": "right ascension [deg]"}),
    pa.field("dec", pa.float64(), metadata={"description": "declination [deg]"}),
    pa.field("type", pa.string(), metadata={"description": "Tractor TYPE"}),
    pa.field("nobs_g", pa.int16(), metadata={"description": "g exposures [count]"}),
    pa.field("nobs_r", pa.int16(), metadata={"description": "r exposures [count]"}),
    pa.field("nobs_z", pa.int16(), metadata={"description": "z exposures [count]"}),
    pa.field("reason", pa.string(), metadata={"description": "first parity cut failed (lensaudit.sampling.parity)"}),
])


def _strata_counts(df: pd.DataFrame) -> dict:
    g = df.groupby(["split", "nobs_z_bin", "type_bin"]).size()
    return {tuple(k): int(v) for k, v in g.items()}


def _spark_strata(F, df):
    nb = (F.when(F.col("nobs_z") <= 2, NOBS_Z_BINS[0]).when(F.col("nobs_z") <= 5, NOBS_Z_BINS[1])
          .when(F.col("nobs_z") <= 10, NOBS_Z_BINS[2]).otherwise(NOBS_Z_BINS[3]))
    tb = F.when(F.col("type").isin(*TYPE_BINS), F.col("type")).otherwise(F.lit(OTHER_TYPE))
    return df.withColumn("nobs_z_bin", nb).withColumn("type_bin", tb)


def _ranked(F, Window, df, seed: int):
    key = F.sha2(F.concat(F.col("galaxy_id"), F.lit(f":{int(seed)}")), 256)
    w = Window.partitionBy("split", "nobs_z_bin", "type_bin").orderBy(F.col("_key"), F.col("galaxy_id"))
    return df.withColumn("_key", key).withColumn("_rank", F.row_number().over(w))


def _apply_quota(F, spark, ranked, quota: dict):
    rows = [(s[0], s[1], s[2], int(q)) for s, q in quota.items() if q > 0] or [("", "", "", 0)]
    quota_df = spark.createDataFrame(rows, "split string, nobs_z_bin string, type_bin string, _quota int")
    return (ranked.join(quota_df, ["split", "nobs_z_bin", "type_bin"]).filter(F.col("_rank") <= F.col("_quota"))
            .withColumn("selected_for_nobs_z_bin", F.col("nobs_z_bin")).drop("_quota"))


def build_manifest(spark, positives: pd.DataFrame, pool_files: list[str], splits_files: list[str],
                   ratio: int, n2_fraction: float, seed: int) -> tuple[pa.Table, pd.DataFrame]:
    """(manifest, shortfalls).  ``positives`` carries split and healpix_128 already."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    pos = positives.copy()
    pos["nobs_z_bin"] = nobs_z_bin(pos["nobs_z"].to_numpy())
    pos["type_bin"] = type_bin(pos["type"].to_numpy())
    targets = {k: ratio * v for k, v in _strata_counts(pos).items()}

    splits = spark.read.parquet(*splits_files).select("galaxy_id", "split", "healpix_128")
    neg = spark.read.parquet(*pool_files).join(splits, "galaxy_id", "inner")
    neg = _spark_strata(F, neg).withColumn("nobs_z", F.col("nobs_z").cast("smallint"))

    n2 = neg.filter(F.col("pool") == "N2")
    n2_avail = {(r["split"], r["nobs_z_bin"], r["type_bin"]): r["count"]
                for r in n2.groupBy("split", "nobs_z_bin", "type_bin").count().collect()}
    n2_ranked = _ranked(F, Window, n2, seed).cache()
    n1_all = neg.filter(F.col("pool") == "N1")
    n2_quota = plan_n2(targets, n2_avail, n2_fraction)
    # N1 may fall short; then N2 is trimmed so that it stays at n2_fraction of the
    # negatives, which frees room for N1 elsewhere: iterate to a fixed point (N2 is a
    # prefix of a fixed hash order, so every pass only removes N2 rows).
    for _ in range(10):
        chosen_n2 = _apply_quota(F, spark, n2_ranked, n2_quota)
        n1 = n1_all.join(chosen_n2.select("galaxy_id"), "galaxy_id", "left_anti")
        n1_avail = {(r["split"], r["nobs_z_bin"], r["type_bin"]): r["count"]
                    for r in n1.groupBy("split", "nobs_z_bin", "type_bin").count().collect()}
        ranges, shortfalls = plan_n1(targets, n2_quota, n1_avail)
        n1_total = int((ranges["rank_hi"] - ranges["rank_lo"] + 1).sum()) if len(ranges) else 0
        trimmed = trim_n2(n2_quota, n1_total, n2_fraction)
        if trimmed == n2_quota:
            break
        n2_quota = trimmed
    ranges_sdf = spark.createDataFrame(ranges) if len(ranges) else None
    cols = [f.name for f in MANIFEST_SCHEMA if f.name not in ("label", "tier", "sample_weight", "lens_id")]
    selected = chosen_n2.select(*cols)
    if ranges_sdf is not None:
        chosen_n1 = (_ranked(F, Window, n1, seed).join(ranges_sdf, ["split", "nobs_z_bin", "type_bin"])
                     .filter((F.col("_rank") >= F.col("rank_lo")) & (F.col("_rank") <= F.col("rank_hi"))))
        selected = selected.unionByName(chosen_n1.select(*cols))
    negatives = selected.toPandas()
    n2_ranked.unpersist()

    negatives["label"] = 0
    negatives["tier"] = negatives["pool"]
    negatives["sample_weight"] = negatives["tier"].map(SAMPLE_WEIGHT_OF_TIER)
    negatives["lens_id"] = ""
    pos["label"] = 1
    pos["pool"] = "positive"
    pos["confuser_category"] = ""
    pos["confuser_flags"] = ""
    pos["selected_for_nobs_z_bin"] = pos["nobs_z_bin"]
    manifest = pd.concat([pos[[f.name for f in MANIFEST_SCHEMA]], negatives[[f.name for f in MANIFEST_SCHEMA]]],
                         ignore_index=True)
    manifest = manifest.sort_values(["split", "label", "galaxy_id"], ascending=[True, False, True], kind="stable")
    table = pa.Table.from_pandas(manifest, schema=MANIFEST_SCHEMA, preserve_index=False)

    n_pos = _strata_counts(pos)
    shortfalls["n_positives"] = [n_pos.get((r.split, r.nobs_z_bin, r.type_bin), 0) for r in shortfalls.itertuples()]
    return table, shortfalls

