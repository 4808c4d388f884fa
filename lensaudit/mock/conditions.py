"""Smooth observing-condition fields of the mock sky.

Each field is a sum of a few random large-scale sinusoids on the sphere, so that
PSF size, depth and exposure counts vary coherently over degrees (spatial splits then
matter).  Units: psfsize in arcsec (FWHM), depth in 5-sigma AB mag, nobs a count.

Seeing and depth are mapped through the normal CDF to near-uniform fields, so that the r-band
PSF FWHM spans ``PSF_R_RANGE_ARCSEC`` and the r-band 5-sigma depth ``DEPTH_R_RANGE_MAG`` (plus
the exposure-count term) about evenly: every (PSF, depth) bin of the selection function's grid
(FWHM 0.9-1.8", depth 22.5-24.5 mag, DESIGN s3) then has hosts.  Real DR10 is peaked
(r FWHM ~1.2-1.4", depth ~23.5-24.5); the mock trades that realism for coverage.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

#: r-band PSF FWHM [arcsec] and 5-sigma depth [AB mag] spanned (before the nobs term) by the mock
PSF_R_RANGE_ARCSEC = (0.82, 1.88)
DEPTH_R_RANGE_MAG = (22.2, 24.8)
#: per-band offsets from r: FWHM [arcsec] and depth [mag]
PSF_OFFSET_ARCSEC = {"g": 0.15, "r": 0.0, "z": -0.10}
DEPTH_OFFSET_MAG = {"g": 0.6, "r": 0.0, "z": -0.9}


def _smooth_field(rng: np.random.Generator, ra_deg, dec_deg, n_modes: int = 4, scale_deg: float = 6.0):
    """Zero-mean, unit-ish amplitude field varying on ~scale_deg."""
    ra = np.deg2rad(ra_deg)
    dec = np.deg2rad(dec_deg)
    x, y, z = np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)
    out = np.zeros_like(x)
    k = 2 * np.pi / np.deg2rad(scale_deg)
    for _ in range(n_modes):
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        phase = rng.uniform(0, 2 * np.pi)
        out += np.cos(k * rng.uniform(0.6, 1.4) * (v[0] * x + v[1] * y + v[2] * z) + phase)
    return out / np.sqrt(n_modes / 2)


def observing_conditions(seed: int, ra_deg: np.ndarray, dec_deg: np.ndarray,
                         jitter: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-object conditions: sky-fixed smooth fields for one seed, plus ``jitter`` for
    the integer exposure counts."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7001]))
    f_seeing = _smooth_field(rng, ra_deg, dec_deg)
    f_depth = _smooth_field(rng, ra_deg, dec_deg)
    f_nobs = _smooth_field(rng, ra_deg, dec_deg, scale_deg=4.0)
    f_ebv = _smooth_field(rng, ra_deg, dec_deg, scale_deg=10.0)
    out: dict[str, np.ndarray] = {}
    u_seeing, u_depth = ndtr(f_seeing), ndtr(f_depth)  # near-uniform on (0, 1)
    fwhm_r = PSF_R_RANGE_ARCSEC[0] + (PSF_R_RANGE_ARCSEC[1] - PSF_R_RANGE_ARCSEC[0]) * u_seeing
    for band, off in PSF_OFFSET_ARCSEC.items():
        out[f"psfsize_{band}"] = np.clip(fwhm_r + off, 0.7, 2.3)
    # nobs: mean 4-10 exposures, 1-2 in a few per cent of the sky (as at DR10 survey edges); depth deepens with nobs (sqrt(N) -> 1.25 log10 N mag)
    mean_nobs = np.clip(7.0 + 2.5 * f_nobs, 2.0, 15.0)
    depth_r = DEPTH_R_RANGE_MAG[0] + (DEPTH_R_RANGE_MAG[1] - DEPTH_R_RANGE_MAG[0]) * u_depth
    for i, band in enumerate(("g", "r", "z")):
        lam = mean_nobs * (1.0 + 0.1 * (i - 1))
        nobs = np.maximum(np.floor(lam + jitter.random(len(lam))), 1)
        out[f"nobs_{band}"] = nobs.astype(np.int16)
        # deeper where more exposures overlap: sqrt(N) -> 1.25 log10(N / mean N) mag
        out[f"depth5_{band}"] = depth_r + DEPTH_OFFSET_MAG[band] + 1.25 * np.log10(nobs / mean_nobs)
    out["ebv"] = np.clip(0.04 + 0.025 * f_ebv, 0.005, 0.2)
    return out
