"""Shortcut features of a cutout (DESIGN s3 "Shortcut features and gates").

Per stamp, r band unless stated (nmgy per pixel; radii in pixels from the centre):
core mean and max within r < 4, 8, 12; arc annulus mean (4 <= r < 16); outer mean
(16 <= r < 28); radial gradient (core r < 4 mean minus the 12 <= r < 16 ring mean, per
10 px); azimuthal asymmetry (std of the annulus residual after subtracting the
azimuthal median profile, over the outer-ring MAD); Laplacian energy (mean squared
5-point Laplacian) in the core (r < 8) and the annulus; annulus-minus-core colours
g-r and r-z (AB, NaN when a mean flux is not positive); saturation fraction (pixels above
a global threshold, the sample's r-band p99.9); edge artefact score (largest |border
median - outer median| over the 3-px borders, in units of the outer MAD).
These features are what a classifier could learn *instead of* arcs (reference/002 s21).
"""

from __future__ import annotations

import numpy as np

import pandas as pd

from lensaudit.stamps import azimuthal_median, azimuthal_median_finite, radius_map
from lensaudit.survey.photometry import nmgy_to_mag

FEATURES = ("core_mean_4", "core_max_4", "core_mean_8", "core_max_8", "core_mean_12", "core_max_12",
            "annulus_mean", "outer_mean", "radial_gradient", "azimuthal_asymmetry", "laplacian_core",
            "laplacian_annulus", "colour_g_r_annulus_minus_core", "colour_r_z_annulus_minus_core",
            "saturation_frac", "edge_artefact")


def _mag(f):
    return float(nmgy_to_mag(f))


def features_of(stamp: np.ndarray, sat_threshold: float) -> dict[str, float]:
    """Features of one (3, H, W) g,r,z stamp (NaN pixels ignored)."""
    g, r_band, z = stamp[0].astype(np.float64), stamp[1].astype(np.float64), stamp[2].astype(np.float64)
    rad = radius_map(stamp.shape[-1])
    def m(a, sel):
        v = a[sel]
        v = v[np.isfinite(v)]
        return float(v.mean()) if len(v) else np.nan
    def mx(a, sel):
        v = a[sel]
        v = v[np.isfinite(v)]
        return float(v.max()) if len(v) else np.nan
    out = {}
    for rr in (4, 8, 12):
        out[f"core_mean_{rr}"] = m(r_band, rad < rr)
        out[f"core_max_{rr}"] = mx(r_band, rad < rr)
    ann = (rad >= 4) & (rad < 16)
    outer = (rad >= 16) & (rad < 28)
    out["annulus_mean"] = m(r_band, ann)
    out["outer_mean"] = m(r_band, outer)
    out["radial_gradient"] = (out["core_mean_4"] - m(r_band, (rad >= 12) & (rad < 16))) / 10.0
    resid = r_band - azimuthal_median(r_band[None], rad)[0]
    ring_outer = r_band[(rad >= 35) & np.isfinite(r_band)]
    mad = 1.4826 * float(np.median(np.abs(ring_outer - np.median(ring_outer)))) if len(ring_outer) else np.nan
    rv = resid[ann & np.isfinite(resid)]
    out["azimuthal_asymmetry"] = float(np.std(rv)) / mad if len(rv) and mad > 0 else np.nan
    lap = np.full_like(r_band, np.nan)
    lap[1:-1, 1:-1] = (r_band[:-2, 1:-1] + r_band[2:, 1:-1] + r_band[1:-1, :-2] + r_band[1:-1, 2:] - 4 * r_band[1:-1, 1:-1])
    out["laplacian_core"] = m(lap**2, rad < 8)
    out["laplacian_annulus"] = m(lap**2, ann)
    core = rad < 4
    cg, cr, cz = m(g, core), m(r_band, core), m(z, core)
    ag, ar, az = m(g, ann), m(r_band, ann), m(z, ann)
    out["colour_g_r_annulus_minus_core"] = (_mag(ag) - _mag(ar)) - (_mag(cg) - _mag(cr))
    out["colour_r_z_annulus_minus_core"] = (_mag(ar) - _mag(az)) - (_mag(cr) - _mag(cz))
    fin = np.isfinite(r_band)
    out["saturation_frac"] = float((r_band[fin] > sat_threshold).mean()) if fin.any() else np.nan
    med_outer = float(np.median(ring_outer)) if len(ring_outer) else np.nan
    borders = [r_band[:3], r_band[-3:], r_band[:, :3], r_band[:, -3:]]
    scores = [abs(float(np.nanmedian(b)) - med_outer) / mad for b in borders if np.isfinite(b).any()] if mad > 0 else []
    out["edge_artefact"] = max(scores) if scores else np.nan
    return out


#: stamps per vectorised block of ``features_table`` (float64 copies of ~60 MB)
FEATURE_BLOCK = 256


def _features_finite(stamps: np.ndarray, sat_threshold: float) -> dict[str, np.ndarray]:
    """``features_of`` for a block of all-finite (N, 3, H, W) stamps at once: the same
    selections, reductions and order of operations, one value per stamp per feature."""
    n = len(stamps)
    r_band = stamps[:, 1].astype(np.float64)  # g and z enter only through two means
    rad = radius_map(stamps.shape[-1])
    def m(a, sel):
        return a[:, sel].astype(np.float64).mean(axis=1)
    out = {}
    for rr in (4, 8, 12):
        out[f"core_mean_{rr}"] = m(r_band, rad < rr)
        out[f"core_max_{rr}"] = r_band[:, rad < rr].max(axis=1)
    ann = (rad >= 4) & (rad < 16)
    out["annulus_mean"] = m(r_band, ann)
    out["outer_mean"] = m(r_band, (rad >= 16) & (rad < 28))
    out["radial_gradient"] = (out["core_mean_4"] - m(r_band, (rad >= 12) & (rad < 16))) / 10.0
    resid = r_band - azimuthal_median_finite(r_band, rad)
    ring_outer = r_band[:, rad >= 35]
    med_outer = np.median(ring_outer, axis=1)
    mad = 1.4826 * np.median(np.abs(ring_outer - med_outer[:, None]), axis=1)
    good_mad = mad > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out["azimuthal_asymmetry"] = np.where(good_mad, resid[:, ann].std(axis=1) / mad, np.nan)
    lap = (r_band[:, :-2, 1:-1] + r_band[:, 2:, 1:-1] + r_band[:, 1:-1, :-2] + r_band[:, 1:-1, 2:]
           - 4 * r_band[:, 1:-1, 1:-1]) ** 2
    inner = rad[1:-1, 1:-1]  # lap is defined on the interior, where the core and annulus lie
    out["laplacian_core"] = m(lap, inner < 8)
    out["laplacian_annulus"] = m(lap, (inner >= 4) & (inner < 16))
    core = rad < 4
    cg, cr, cz = (nmgy_to_mag(m(b, core)) for b in (stamps[:, 0], r_band, stamps[:, 2]))
    ag, ar, az = (nmgy_to_mag(m(b, ann)) for b in (stamps[:, 0], r_band, stamps[:, 2]))
    out["colour_g_r_annulus_minus_core"] = (ag - ar) - (cg - cr)
    out["colour_r_z_annulus_minus_core"] = (ar - az) - (cr - cz)
    out["saturation_frac"] = (r_band > sat_threshold).reshape(n, -1).mean(axis=1)
    borders = [r_band[:, :3].reshape(n, -1), r_band[:, -3:].reshape(n, -1),
               r_band[:, :, :3].reshape(n, -1), r_band[:, :, -3:].reshape(n, -1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.stack([np.abs(np.median(b, axis=1) - med_outer) / mad for b in borders])
    out["edge_artefact"] = np.where(good_mad, scores.max(axis=0), np.nan)
    return out


def features_table(stamps: np.ndarray, sat_threshold: float) -> pd.DataFrame:
    """``features_of`` of every (3, H, W) stamp of ``stamps``, one row per stamp in order
    (columns ``FEATURES``): all-finite stamps in vectorised blocks of ``FEATURE_BLOCK``,
    a stamp with a NaN or infinite pixel through ``features_of`` (same numbers either way, tested)."""
    n = len(stamps)
    cols = {f: np.full(n, np.nan) for f in FEATURES}
    finite = np.isfinite(stamps).all(axis=(1, 2, 3)) if n else np.zeros(0, bool)
    idx = np.flatnonzero(finite)
    for a in range(0, len(idx), FEATURE_BLOCK):
        rows = idx[a:a + FEATURE_BLOCK]
        for f, v in _features_finite(stamps[rows], sat_threshold).items():
            cols[f][rows] = v
    for i in np.flatnonzero(~finite):
        for f, v in features_of(stamps[i], sat_threshold).items():
            cols[f][i] = v
    return pd.DataFrame(cols, columns=list(FEATURES))


def saturation_threshold(stamps: np.ndarray) -> float:
    """The global r-band p99.9 over a sample of stamps (N, 3, H, W)."""
    v = stamps[:, 1].ravel()
    v = v[np.isfinite(v)]
    return float(np.percentile(v, 99.9)) if len(v) else np.inf


def core_pixels(stamps: np.ndarray, radius_px: float = 10.0) -> np.ndarray:
    """(N, 3 x n_core) central r < radius pixels of every band (NaN -> 0), for the
    core-only classifier."""
    rad = radius_map(stamps.shape[-1])
    sel = rad < radius_px
    x = stamps[:, :, sel].reshape(len(stamps), -1)
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
