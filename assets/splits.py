"""``spatial_splits``: HEALPix train/val/test for every positive and pool galaxy."""

import dagster as dg
import pandas as pd

from assets._wiring import json_meta, png_metadata, schema_metadata
from lensaudit.plots import split_sky_map
from assets.catalogs import positives
from assets.negatives import negative_pool
from lensaudit.splits import (SPLIT_FRACTIONS, SPLIT_NSIDE, SPLIT_ORDER, healpix_index, split_of_pixels,
                             split_proportions)
from lensaudit.store import partition_file, safe_join, write_parquet_atomic
from lensaudit.tables import read_table
from lensaudit.tables import SPLITS_SCHEMA
from resources.settings import LensauditSettings

#: the split fractions the producer draws (description text)
_FRACTIONS = " / ".join(f"{name} {SPLIT_FRACTIONS[name]:.2f}" for name in SPLIT_ORDER)


@dg.asset(group_name="sampling", kinds={"pandas", "healpy", "parquet"}, deps=[positives, negative_pool],
          metadata=schema_metadata("spatial_splits"),
          description=f"HEALPix nside {SPLIT_NSIDE} nested pixels -> {_FRACTIONS} by sha256(\"{{pixel}}:{{seed}}\").")
def spatial_splits(context: dg.AssetExecutionContext, settings: LensauditSettings) -> dg.MaterializeResult:
    home, profile = settings.home_path(), settings.profile_obj()
    pos = read_table(home, "positives", columns=["galaxy_id", "ra", "dec"]).assign(role="positive")
    neg = read_table(home, "negative_pool", columns=["galaxy_id", "ra", "dec"]).drop_duplicates("galaxy_id")
    neg = neg.assign(role="negative")
    df = pd.concat([pos, neg], ignore_index=True)
    df["healpix_128"] = healpix_index(df["ra"].to_numpy(), df["dec"].to_numpy())
    df["split"] = split_of_pixels(df["healpix_128"].to_numpy(), profile.split_seed, profile.split_fractions)
    df = df.sort_values("galaxy_id", kind="stable")
    out = partition_file(home, "spatial_splits", "data")
    write_parquet_atomic(df[SPLITS_SCHEMA.names], out, schema=SPLITS_SCHEMA)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(df), "path": str(out), "pixels": int(df["healpix_128"].nunique()),
        "proportions": json_meta(split_proportions(df["split"])),
        "positives_per_split": json_meta(df.loc[df["role"] == "positive", "split"].value_counts().to_dict()),
        "seed": profile.split_seed,
        "sky_map": png_metadata(split_sky_map(df["ra"].to_numpy(), df["dec"].to_numpy(), df["split"].to_numpy()),
                                safe_join(home, "plots", "spatial_splits_sky.png")),
    })

