"""Source light: elliptical Sersic plus Gaussian clumps, normalised by total flux.

Sersic in lenstronomy's SERSIC_ELLIPSE convention: I(R) = amp exp(-b_n [(R/R_s)^(1/n) - 1])
with R = sqrt(x'^2 + y'^2), x' = ((1-e1) dx - e2 dy)/N, y' = (-e2 dx + (1+e1) dy)/N,
N = sqrt(1 - e1^2 - e2^2) (product-averaged radius), b_n = 1.9992 n - 0.3271, R floored
at 1e-4 arcsec.  Total flux 2 pi n R_s^2 e^{b_n} b_n^{-2n} Gamma(2n) amp, independent of
the ellipticity; ``sersic_amp_for_flux`` inverts it so that the *unlensed* source carries
exactly the requested flux.  Surface brightness in nmgy/arcsec^2, fluxes in nmgy.
"""

from __future__ import annotations

import math

import torch

R_SMOOTH_ARCSEC = 1e-4


def b_n(n):
    return torch.clamp(1.9992 * n - 0.3271, min=1e-5)


def sersic_unit_flux_amp(r_sersic, n):
    """amp giving a total flux of 1 (nmgy) for (R_sersic, n)."""
    bn = b_n(n)
    total = 2 * math.pi * n * r_sersic**2 * torch.exp(bn) * bn ** (-2 * n) * torch.exp(torch.lgamma(2 * n))
    return 1.0 / total


def sersic_unit_amp(r_sersic: float, n: float) -> float:
    """Scalar (float) version of :func:`sersic_unit_flux_amp`, for numpy/lenstronomy callers."""
    bn = max(1.9992 * n - 0.3271, 1e-5)
    return 1.0 / (2 * math.pi * n * r_sersic**2 * math.exp(bn) * bn ** (-2 * n) * math.gamma(2 * n))


def sersic_sb(x, y, amp, r_sersic, n, e1, e2, center_x, center_y):
    dx, dy = x - center_x, y - center_y
    norm = torch.sqrt(torch.clamp(torch.abs(1 - e1**2 - e2**2), min=1e-6))
    xp = ((1 - e1) * dx - e2 * dy) / norm
    yp = (-e2 * dx + (1 + e1) * dy) / norm
    r = torch.clamp(torch.sqrt(xp**2 + yp**2), min=R_SMOOTH_ARCSEC)
    return amp * torch.exp(-b_n(n) * ((r / r_sersic) ** (1.0 / n) - 1))


def gaussian_sb(x, y, flux, sigma, center_x, center_y):
    """Round Gaussian knot of total ``flux`` (nmgy) and width sigma (arcsec)."""
    return flux / (2 * math.pi * sigma**2) * torch.exp(-((x - center_x) ** 2 + (y - center_y) ** 2) / (2 * sigma**2))


def source_unit_sb(x, y, p: dict, n_clumps: int):
    """Surface brightness of a unit-total-flux source: (1 - f_clumps) Sersic + clumps.

    p holds (B, 1, 1)-shaped tensors: src_x, src_y, r_sersic, n_sersic, src_e1, src_e2,
    and for clumps clump_dx/dy/sigma/frac of shape (B, K, 1, 1) (K = n_clumps max; a
    clump with frac 0 is absent).
    """
    amp = sersic_unit_flux_amp(p["r_sersic"], p["n_sersic"])
    if n_clumps == 0:
        return sersic_sb(x, y, amp, p["r_sersic"], p["n_sersic"], p["src_e1"], p["src_e2"], p["src_x"], p["src_y"])
    f_clumps = p["clump_frac"].sum(dim=1)
    sb = (1 - f_clumps) * sersic_sb(x, y, amp, p["r_sersic"], p["n_sersic"], p["src_e1"], p["src_e2"], p["src_x"], p["src_y"])
    for k in range(n_clumps):
        sb = sb + gaussian_sb(x, y, p["clump_frac"][:, k], p["clump_sigma"][:, k],
                              p["src_x"] + p["clump_dx"][:, k], p["src_y"] + p["clump_dy"][:, k])
    return sb
