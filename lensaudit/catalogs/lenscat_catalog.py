"""Known strong lenses from the ``lenscat`` package (Vujeva et al. 2025).

``load_lenscat`` returns every entry (galaxy, group and cluster scale, every grading):
the exclusion radius of the negative pools is applied against all of them.
``galaxy_lenses`` selects the galaxy-scale lenses used as positives and assigns tiers:
tier A = ``confident`` (loss weight 1.0), tier B = ``probable`` (weight 0.5).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from lensaudit.survey.footprint import in_decals_footprint

TIER_OF_GRADING = {"confident": "A", "probable": "B"}
SAMPLE_WEIGHT_OF_TIER = {"A": 1.0, "B": 0.5, "N1": 1.0, "N2": 1.0}


#: lenscat's catalogue columns (its ``data/catalog.csv``) -> ours
LENSCAT_COLUMNS = {"name": "lens_name", "RA [deg]": "ra", "DEC [deg]": "dec", "zlens": "zlens", "type": "lens_type",
                   "grading": "grading", "ref": "ref"}


def lenscat_csv() -> Path:
    """The catalogue file lenscat itself reads (``lenscat.catalog_filepath``, ``data/catalog.csv``
    inside the package), located without importing the package: ``import lenscat`` builds an
    astropy Table and pulls in ligo.skymap and matplotlib: 2.5-12 s on a 2-core VM each time a
    process loaded the catalogue (bench/RESULTS.md, session 20)."""
    spec = importlib.util.find_spec("lenscat")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("lenscat is not installed (pip install 'lenscat>=1.1,<2')")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "catalog.csv"


@lru_cache(maxsize=1)
def load_lenscat() -> pd.DataFrame:
    """All lenscat entries: lens_id, lens_name, ra, dec (deg), zlens (str), lens_type, grading, ref.

    Read from lenscat's own ``data/catalog.csv`` with ``pd.read_csv`` as the package does (its
    ``lenscat.catalog`` adds astropy units only; the test suite holds the two equal, value for
    value).  lenscat names are not unique (646 repeats in lenscat 1.1.3, "-" among them), so
    ``lens_id`` numbers the entries in the package's own row order.
    """
    path = lenscat_csv()
    raw = pd.read_csv(path)
    missing = sorted(set(LENSCAT_COLUMNS) - set(raw.columns))
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}: a lenscat release whose catalogue this loader "
                         "does not know")
    # the text columns stay Python strings (object dtype): a fixed-width numpy unicode array as wide
    # as the longest ``ref`` (1,587 characters: ~0.2 GB for 32,838 rows) took seconds to build and copy
    cols = {dst: raw[src].to_numpy(np.float64) if dst in ("ra", "dec") else raw[src].astype(str).to_numpy(object)
            for src, dst in LENSCAT_COLUMNS.items()}
    return pd.DataFrame({"lens_id": [f"lenscat_{i:05d}" for i in range(len(raw))], **cols})


def galaxy_lenses(all_entries: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Galaxy-scale lenses in the DECaLS footprint with tier and sample_weight.

    Returns (catalog, counters); the counters say how many entries each cut removed,
    so that nothing disappears without a count.
    """
    counts = {"lenscat_entries": int(len(all_entries))}
    df = all_entries
    valid = np.isfinite(df["ra"].to_numpy()) & np.isfinite(df["dec"].to_numpy())
    counts["removed_invalid_coords"] = int((~valid).sum())
    df = df[valid]
    galaxy = df["lens_type"].to_numpy() == "galaxy"
    counts["removed_not_galaxy_scale"] = int((~galaxy).sum())
    df = df[galaxy]
    graded = df["grading"].isin(TIER_OF_GRADING).to_numpy()
    counts["removed_unknown_grading"] = int((~graded).sum())
    df = df[graded]
    inside = in_decals_footprint(df["ra"].to_numpy(), df["dec"].to_numpy())
    counts["removed_outside_footprint"] = int((~inside).sum())
    df = df[inside].copy()
    df["tier"] = df["grading"].map(TIER_OF_GRADING)
    df["sample_weight"] = df["tier"].map(SAMPLE_WEIGHT_OF_TIER).astype(np.float64)
    df = df.sort_values("lens_id", kind="stable").reset_index(drop=True)
    counts["kept"] = int(len(df))
    return df, counts
