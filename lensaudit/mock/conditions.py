"""Smooth observing-condition fields of the mock sky.

Each field is a sum of a few random large-scale sinusoids on the sphere, so that
PSF size, depth and exposure counts vary coherently over degrees (spatial splits then
matter).  Units: psfsize in arcsec (FWHM), depth in 5-sigma AB mag, nobs a count.
"""

from __future__ import annotations

import numpy as np


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
    base_fwhm = {"g": 1.45, "r": 1.30, "z": 1.20}
    for band, fwhm in base_fwhm.items():
        out[f"psfsize_{band}"] = np.clip(fwhm + 0.22 * f_seeing, 0.75, 2.3)
    # nobs: mean 4-10 exposures, 1-2 in a few per cent of the sky (as at DR10 survey edges); depth deepens with nobs (sqrt(N) -> 1.25 log10 N mag)
    mean_nobs = np.clip(7.0 + 2.5 * f_nobs, 2.0, 15.0)
    base_depth = {"g": 24.4, "r": 23.8, "z": 22.9}
    for i, band in enumerate(("g", "r", "z")):
        lam = mean_nobs * (1.0 + 0.1 * (i - 1))
        nobs = np.maximum(np.floor(lam + jitter.random(len(lam))), 1)
        out[f"nobs_{band}"] = nobs.astype(np.int16)
        out[f"depth5_{band}"] = base_depth[band] + 0.25 * f_depth + 1.25 * np.log10(nobs / 4.0)
    out["ebv"] = np.clip(0.04 + 0.025 * f_ebv, 0.005, 0.2)
    return out
