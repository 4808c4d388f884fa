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

from lensaudit.stamps import azimuthal_median, radius_map
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
