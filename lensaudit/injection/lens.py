"""Lens deflections in torch, in lenstronomy's conventions exactly.

SIE (Kormann, Schneider & Bartelmann 1994; Keeton & Kochanek 1998 eq. 8 ff., as
``lenstronomy.LensModel.Profiles.sie`` with s -> 0):
  phi = arctan2(e2, e1) / 2,  q = (1 - |e|) / (1 + |e|)  (|e| capped at 0.9999),
  theta_E is the product-averaged Einstein radius; b = theta_E / sqrt((1+q^2)/(2q)) *
  sqrt((1+q^2)/2); in the frame rotated by phi, with psi = sqrt(q^2 x^2 + y^2):
    alpha_x = b / sqrt(1-q^2) * arctan (sqrt(1-q^2) x / psi)
    alpha_y = b / sqrt(1-q^2) * arctanh(sqrt(1-q^2) y / (psi))
  and rotated back.  Near q = 1 (the SIS) the ratios arctan(s t)/s, arctanh(s t)/s
  with s = sqrt(1-q^2) are evaluated by their series, which keeps float32 finite.
External shear (lenstronomy SHEAR): alpha_x = g1 x + g2 y, alpha_y = g2 x - g1 y.
Angles in arcsec; tensors broadcast over a leading batch dimension.
"""

from __future__ import annotations

import torch

Q_MAX = 0.99999999


def ellipticity_to_phi_q(e1: torch.Tensor, e2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    phi = torch.atan2(e2, e1) / 2
    c = torch.clamp(torch.sqrt(e1**2 + e2**2), max=0.9999)
    return phi, (1 - c) / (1 + c)


def sie_deflection(x, y, theta_e, e1, e2, center_x, center_y):
    """(alpha_x, alpha_y) in arcsec; parameters broadcast against x, y."""
    phi, q = ellipticity_to_phi_q(e1, e2)
    q = torch.clamp(q, max=Q_MAX)
    theta_major = theta_e / torch.sqrt((1 + q**2) / (2 * q))
    b = theta_major * torch.sqrt((1 + q**2) / 2)
    cos_p, sin_p = torch.cos(phi), torch.sin(phi)
    dx, dy = x - center_x, y - center_y
    xr = cos_p * dx + sin_p * dy
    yr = -sin_p * dx + cos_p * dy
    psi = torch.sqrt(q**2 * xr**2 + yr**2)
    psi = torch.clamp(psi, min=torch.finfo(psi.dtype).tiny)
    eps = torch.finfo(psi.dtype).eps
    sq = torch.sqrt(torch.clamp(1 - q**2, min=0.0))
    tx, ty = xr / psi, torch.clamp(yr / psi, -1.0, 1.0)
    small = sq < 1e-3  # near-round lens: series of arctan(s t)/s and arctanh(s t)/s
    sq_safe = torch.where(small, torch.ones_like(sq), sq)
    fx = torch.where(small, tx * (1 - (sq * tx) ** 2 / 3), torch.atan(sq_safe * tx) / sq_safe) * b
    fy = torch.where(small, ty * (1 + (sq * ty) ** 2 / 3),
                     torch.atanh(torch.clamp(sq_safe * ty, -1 + eps, 1 - eps)) / sq_safe) * b
    return cos_p * fx - sin_p * fy, sin_p * fx + cos_p * fy


def shear_deflection(x, y, gamma1, gamma2):
    return gamma1 * x + gamma2 * y, gamma2 * x - gamma1 * y


def sie_potential(x, y, theta_e, e1, e2, center_x, center_y):
    """SIE lensing potential (Keeton & Kochanek 1998), x alpha_x + y alpha_y in the
    rotated frame, used by tests to check the deflection by finite differences."""
    phi, q = ellipticity_to_phi_q(e1, e2)
    cos_p, sin_p = torch.cos(phi), torch.sin(phi)
    dx, dy = x - center_x, y - center_y
    xr = cos_p * dx + sin_p * dy
    yr = -sin_p * dx + cos_p * dy
    ax, ay = sie_deflection(x, y, theta_e, e1, e2, center_x, center_y)
    axr = cos_p * ax + sin_p * ay
    ayr = -sin_p * ax + cos_p * ay
    return xr * axr + yr * ayr
