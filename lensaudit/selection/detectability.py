"""Model-free arc visibility (DESIGN s3 "Selection function", detectability decomposition).

The statistic is the integrated annulus excess S/N, computed batched in torch so that it
runs where the stamps are: per band, the residual over the azimuthal (1-px ring) median
(which removes a round host), *summed without clipping* over 4 <= r < 16 px (the annulus
of ``lensaudit.injection.realism``), divided by sigma_pix sqrt(N_pix), sigma_pix = 1.4826 MAD
of the outer ring r >= 35 px.  Pure noise gives S/N ~ N(0, 1) here; the realism
statistic (``annulus_stats``) sums clip(resid, 0) instead, which for pure noise is
~0.4 sqrt(N_pix) ~ 11 and so cannot tell "no arc" from "arc".  An injection is *observable* when its annulus S/N is
>= ``SNR_PER_BAND`` (3) in at least ``MIN_BANDS`` (2) of g, r, z: coherent in two bands,
so one noisy band or a single-band artefact does not count.
For injections the statistic is taken on the injected signal (arc + its noise) with the
*host's* noise (its outer-ring MAD): "is the arc above the noise of this cutout", so a
host's own asymmetric light (a bright neighbour, a spike) does not make an invisible arc
look observable (on the injected stamp itself it did: the demo's galleries showed it).
Blind spot, by construction: a complete, round Einstein ring is azimuthally symmetric and
the ring median removes it; the statistic sees arcs (partial rings), which the prior's
off-centre sources mostly make.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from lensaudit.detector.preprocess import nanmedian_last
from lensaudit.injection.realism import ANNULUS_PX, OUTER_RING_PX
from lensaudit.stamps import radius_map

SNR_PER_BAND = 3.0
MIN_BANDS = 2


@lru_cache(maxsize=4)
def _geometry(size: int):
    r = radius_map(size)
    ring = np.floor(r).astype(np.int64).ravel()
    lo, hi = int(ANNULUS_PX[0]), int(np.ceil(ANNULUS_PX[1]))
    ann = ((r >= ANNULUS_PX[0]) & (r < ANNULUS_PX[1])).ravel()
    rings = [np.flatnonzero(ring == k) for k in range(lo, hi)]
    width = max(len(x) for x in rings)
    pad = np.full((len(rings), width), size * size, np.int64)  # index of a NaN sentinel
    for i, x in enumerate(rings):
        pad[i, :len(x)] = x
    ann_idx = np.flatnonzero(ann)
    ann_ring = ring[ann_idx] - lo
    outer_idx = np.flatnonzero(r.ravel() >= OUTER_RING_PX)
    return pad, ann_idx, ann_ring, outer_idx


def outer_sigma(stamps: torch.Tensor) -> torch.Tensor:
    """(N, 3) per-pixel noise [nmgy]: 1.4826 MAD of the outer ring r >= 35 px."""
    n, c, h, w = stamps.shape
    outer_idx = torch.as_tensor(_geometry(h)[3], device=stamps.device)
    outer = stamps.to(torch.float64).reshape(n, c, h * w)[:, :, outer_idx]
    m = nanmedian_last(outer)
    return 1.4826 * nanmedian_last((outer - m[..., None]).abs())


def annulus_snr(stamps: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 3) integrated annulus S/N of (N, 3, H, W) stamps in nmgy/pixel (any device).
    ``sigma`` (N, 3): the per-pixel noise to divide by; default ``outer_sigma(stamps)``."""
    n, c, h, w = stamps.shape
    pad, ann_idx, ann_ring, _ = (torch.as_tensor(a, device=stamps.device) for a in _geometry(h))
    x = stamps.to(torch.float64).reshape(n, c, h * w)
    xs = torch.cat([x, torch.full((n, c, 1), float("nan"), dtype=x.dtype, device=x.device)], dim=2)
    med = nanmedian_last(xs[:, :, pad])  # (N, C, rings)
    med = torch.nan_to_num(med, nan=0.0)
    resid = x[:, :, ann_idx] - med[:, :, ann_ring]
    flux = torch.nan_to_num(resid, nan=0.0).sum(-1)
    if sigma is None:
        sigma = outer_sigma(stamps)
    return flux / (sigma.to(flux.dtype) * np.sqrt(len(ann_idx)))


def observable(snr_bands: np.ndarray) -> np.ndarray:
    """True where at least MIN_BANDS bands reach SNR_PER_BAND."""
    return (np.nan_to_num(np.asarray(snr_bands), nan=0.0) >= SNR_PER_BAND).sum(axis=1) >= MIN_BANDS
