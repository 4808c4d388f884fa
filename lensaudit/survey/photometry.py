"""Photometric conventions of the Legacy Surveys.

Fluxes are in nanomaggies (nmgy): AB mag = 22.5 - 2.5 log10(flux_nmgy).
PSFDEPTH / GALDEPTH are inverse variances of the flux of a point source / a 0.45"
round exponential galaxy, in 1/nmgy^2; the 5-sigma depth in AB mag is
``22.5 - 2.5 log10(5 / sqrt(depth_ivar))``
(https://www.legacysurvey.org/dr10/catalogs/, "depth" columns).
MW_TRANSMISSION is the linear Galactic transmission; the dereddened flux is
flux / mw_transmission.  Extinction coefficients A_band / E(B-V) for DECam (Schlafly &
Finkbeiner 2011, as used by legacypipe DR9/DR10) are in ``EXTINCTION_COEFF``.
"""

from __future__ import annotations

import numpy as np
from lensaudit.survey.instrument import AB_ZEROPOINT_NMGY

EXTINCTION_COEFF = {"g": 3.214, "r": 2.165, "i": 1.592, "z": 1.211}


def nmgy_to_mag(flux_nmgy):
    """AB magnitude; non-positive or non-finite flux gives NaN (never -inf)."""
    f = np.asarray(flux_nmgy, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, AB_ZEROPOINT_NMGY - 2.5 * np.log10(np.where(f > 0, f, 1.0)), np.nan)


def mag_to_nmgy(mag_ab):
    return 10.0 ** (-0.4 * (np.asarray(mag_ab, dtype=np.float64) - AB_ZEROPOINT_NMGY))


def depth_ivar_to_mag5sigma(depth_ivar_per_nmgy2):
    """5-sigma AB depth from a PSFDEPTH/GALDEPTH inverse variance (1/nmgy^2); <=0 -> NaN."""
    d = np.asarray(depth_ivar_per_nmgy2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, AB_ZEROPOINT_NMGY - 2.5 * np.log10(5.0 / np.sqrt(np.where(d > 0, d, 1.0))), np.nan)


def mag5sigma_to_depth_ivar(mag5sigma_ab):
    """Inverse of :func:`depth_ivar_to_mag5sigma` (1/nmgy^2)."""
    sigma_nmgy = mag_to_nmgy(mag5sigma_ab) / 5.0
    return 1.0 / sigma_nmgy**2


def mw_transmission(ebv, band: str):
    """Linear Galactic transmission 10^(-0.4 R_band E(B-V))."""
    return 10.0 ** (-0.4 * EXTINCTION_COEFF[band] * np.asarray(ebv, dtype=np.float64))
