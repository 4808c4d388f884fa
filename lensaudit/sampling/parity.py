"""Sky and type parity of the positives with the negatives (DESIGN s3 "Fixing the skew").

Negatives are held to -18 < dec < 32 deg, nobs >= 3 in g, r, z and TYPE in {SER, DEV, REX}
(``sampling.pools``); a positive outside that domain (deeper DES imaging south of -18 deg,
a shallow single-epoch patch, a PSF-type lens) would let the detector learn the region or
the depth instead of the arc.  Such positives are excluded from training and evaluation,
each with the first cut it fails as its reason, and the balance of the kept positives and
the negatives in depth, PSF and declination is measured (standardised mean differences).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensaudit.survey.photometry import depth_ivar_to_mag5sigma

PARITY_CUT_ORDER = ("dec_range", "nobs_g", "nobs_r", "nobs_z", "type")
BALANCE_COLUMNS = ("psfdepth_r_mag5sigma", "psfsize_r", "dec")


def parity_failures(df: pd.DataFrame, dec_min: float, dec_max: float, min_nobs: int, types) -> pd.Series:
    """The first parity cut each row fails ('' when it passes), in ``PARITY_CUT_ORDER``."""
    dec = df["dec"].to_numpy(float)
    fails = {
        "dec_range": ~((dec > dec_min) & (dec < dec_max)),
        "nobs_g": ~(df["nobs_g"].to_numpy() >= min_nobs),
        "nobs_r": ~(df["nobs_r"].to_numpy() >= min_nobs),
        "nobs_z": ~(df["nobs_z"].to_numpy() >= min_nobs),
        "type": ~np.isin(df["type"].astype(str).to_numpy(), list(types)),
    }
    reason = np.full(len(df), "", dtype=object)
    for name in reversed(PARITY_CUT_ORDER):
        reason[fails[name]] = name
    return pd.Series(reason, index=df.index, dtype=object)


def split_positives(pos: pd.DataFrame, dec_min: float, dec_max: float, min_nobs: int, types
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept positives, excluded positives with a ``reason`` column)."""
    reason = parity_failures(pos, dec_min, dec_max, min_nobs, types)
    bad = reason != ""
    return pos[~bad].copy(), pos[bad].assign(reason=reason[bad]).copy()


def balance_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The balance columns of manifest rows: r depth as 5-sigma AB mag, r PSF FWHM [arcsec], dec [deg]."""
    return pd.DataFrame({"psfdepth_r_mag5sigma": depth_ivar_to_mag5sigma(df["psfdepth_r"].to_numpy(float)),
                         "psfsize_r": df["psfsize_r"].to_numpy(float), "dec": df["dec"].to_numpy(float)})


def standardised_mean_difference(a, b) -> float:
    """(mean a - mean b) / sqrt((var a + var b) / 2) (Austin 2009); NaN when undefined."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else 0.0
