"""HEALPix spatial train/val/test splits and their verification (DESIGN section 3).

pixel = HEALPix nside 128, NESTED ordering, of (ra, dec) (healpy, lonlat=True);
u = first 8 bytes of sha256("{pixel}:{seed}") read big-endian / 2^64, in [0, 1);
split = train if u < 0.70, val if u < 0.85, else test (explicit order, never the
order of a dict or a set).  Positives and negatives go through the same function, so a
pixel, and every galaxy in it, sits in exactly one split.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

SPLIT_NSIDE = 128
SPLIT_ORDER = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}
NO_PIXEL = -1


def healpix_index(ra_deg, dec_deg, nside: int = SPLIT_NSIDE) -> np.ndarray:
    """Nested HEALPix pixel; -1 for non-finite coordinates."""
    import healpy as hp

    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    out = np.full(ra.shape, NO_PIXEL, dtype=np.int64)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    if ok.any():
        out[ok] = hp.ang2pix(nside, ra[ok], dec[ok], nest=True, lonlat=True)
    return out


def hash_fraction(pixel: int, seed: int) -> float:
    digest = hashlib.sha256(f"{int(pixel)}:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of_fraction(u: float, fractions: dict[str, float] = SPLIT_FRACTIONS) -> str:
    edge = 0.0
    for name in SPLIT_ORDER:
        edge += fractions[name]
        if u < edge:
            return name
    return SPLIT_ORDER[-1]


def split_of_pixels(pixels, seed: int, fractions: dict[str, float] = SPLIT_FRACTIONS) -> np.ndarray:
    """Split name per pixel (vectorised over unique pixels); pixel -1 gives ''."""
    if abs(sum(fractions[s] for s in SPLIT_ORDER) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    pixels = np.asarray(pixels, dtype=np.int64)
    uniq, inverse = np.unique(pixels, return_inverse=True)
    names = np.array([split_of_fraction(hash_fraction(p, seed), fractions) if p != NO_PIXEL else ""
                      for p in uniq], dtype=object)
    return names[inverse] if len(uniq) else np.array([], dtype=object)


def verify_disjoint(df: pd.DataFrame, keys=("galaxy_id", "healpix_128")) -> dict[str, list]:
    """Values of each key column found in more than one split (empty lists = disjoint)."""
    out = {}
    for key in keys:
        if key not in df.columns:
            raise KeyError(f"cannot verify disjointness: column {key!r} missing")
        n_splits = df.groupby(key)["split"].nunique()
        out[key] = sorted(n_splits[n_splits > 1].index.tolist())
    return out


def split_proportions(split: pd.Series) -> dict[str, float]:
    counts = split.value_counts()
    total = counts.sum()
    return {s: float(counts.get(s, 0) / total) if total else float("nan") for s in SPLIT_ORDER}
