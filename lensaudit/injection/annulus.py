"""The annulus statistic of a stamp and its noise, batched in torch (any device).

Per band: the residual over the azimuthal (1-px ring) median, summed *without clipping*
over the annulus ``ANNULUS_PX`` (4 <= r < 16 px, r from the centre pixel), divided by
sigma_pix sqrt(N_pix) with sigma_pix = 1.4826 MAD of the outer ring r >= ``OUTER_RING_PX``
(35 px).  Used by the realism statistics (``injection.realism``) and, per injection, by the
selection function (``injection.visibility``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from lensaudit.detector.preprocess import median_last_finite, nanmedian_last
from lensaudit.stamps import radius_map

ANNULUS_PX = (4.0, 16.0)
#: on a GPU, the rings' medians by ``ring_medians_sorted`` (one sort, no host sync) instead of one
#: ``torch.median`` per ring after a host-side finiteness check: the same values, no gain on an H100
#: (1.10-1.11 s vs 1.09-1.19 s end to end) and 2x slower on one CPU core, so off (bench/RESULTS.md,
#: ``bench_selection.py --sorted-ring-medians``)
RING_MEDIANS_SORTED = False
OUTER_RING_PX = 35.0


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


@lru_cache(maxsize=8)
def _geometry_on(size: int, device: str) -> tuple[torch.Tensor, ...]:
    """``_geometry(size)`` as tensors on ``device``, uploaded once per process (not per batch)."""
    return tuple(torch.as_tensor(a, device=device) for a in _geometry(size))


@lru_cache(maxsize=8)
def _ring_index(size: int, device: str) -> list[torch.Tensor]:
    """The pixel indices of each 1-px ring of the annulus (unpadded), on ``device``."""
    pad = _geometry(size)[0]
    return [torch.as_tensor(row[row < size * size], device=device) for row in pad]


@lru_cache(maxsize=8)
def _ring_table_centred(size: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The annulus' rings as (R, W) pixel indices, each ring centred between padding: its first
    p = (W - w) // 2 entries are padding to read as -inf, its last W - w - p as +inf.  Returns
    (indices, padding sign (R, W) int8: -1, +1 or 0 for a ring pixel, p (R,)).  Sorted, a padded
    row holds its ring's finite values at [p, p + k) whatever k is."""
    pad = _geometry(size)[0]
    idx = np.zeros(pad.shape, np.int64)
    sign = np.ones(pad.shape, np.int8)
    lead = np.zeros(len(pad), np.int64)
    for i, row in enumerate(pad):
        ring = row[row < size * size]
        p = (pad.shape[1] - len(ring)) // 2
        idx[i, p:p + len(ring)], sign[i, :p], sign[i, p:p + len(ring)], lead[i] = ring, -1, 0, p
    return tuple(torch.as_tensor(a, device=device) for a in (idx, sign, lead))


def ring_medians_sorted(flat: torch.Tensor) -> torch.Tensor:
    """(N, C, rings) float64 median of each annulus ring of (N, C, size^2) stamps, ignoring
    non-finite pixels (NaN where a ring has none): numpy ``nanmedian`` of the finite values,
    the two middle values selected in the stamps' dtype and averaged in float64.  The rings are
    gathered centred between -inf / +inf padding (``_ring_table_centred``), non-finite pixels
    set to NaN (sorted last), one batched sort, one gather: no host synchronisation (the GPU
    path; equal to the per-ring medians and to ``nanmedian_last``, tested)."""
    n, c, hw = flat.shape
    idx, sign, lead = _ring_table_centred(int(round(hw ** 0.5)), str(flat.device))
    g = flat[:, :, idx]  # (N, C, R, W)
    g = torch.where(torch.isfinite(g), g, torch.full_like(g, float("nan")))
    g = torch.where(sign == 0, g, sign.to(g.dtype) * float("inf"))
    k = torch.isfinite(g).sum(dim=-1)  # the padding is not finite
    s = g.sort(dim=-1).values
    lo = s.gather(-1, (lead + torch.div(k - 1, 2, rounding_mode="floor")).clamp(min=0)[..., None]).squeeze(-1)
    hi = s.gather(-1, (lead + torch.div(k, 2, rounding_mode="floor")).clamp(max=g.shape[-1] - 1)[..., None]).squeeze(-1)
    med = (lo.to(torch.float64) + hi.to(torch.float64)) / 2
    return torch.where(k > 0, med, torch.full_like(med, float("nan")))


def outer_sigma(stamps: torch.Tensor) -> torch.Tensor:
    """(N, 3) per-pixel noise [nmgy]: 1.4826 MAD of the outer ring r >= 35 px."""
    n, c, h, w = stamps.shape
    outer_idx = _geometry_on(h, str(stamps.device))[3]
    outer = stamps.to(torch.float64).reshape(n, c, h * w)[:, :, outer_idx]
    m = nanmedian_last(outer)
    return 1.4826 * nanmedian_last((outer - m[..., None]).abs())


class AnnulusFinite:
    """Whether every annulus pixel of (N, C, H, W) stamps is finite, read back late: on a GPU
    the flag is copied to pinned host memory behind an event when the stamps are made, and
    ``bool()`` waits only for that event, so a caller that queues more work (e.g. the scoring)
    before asking keeps the device busy while it decides (``annulus_snr``'s ``finite``); off a
    GPU it is computed when asked (the CPU path never asks)."""

    def __init__(self, stamps: torch.Tensor):
        self._stamps, self._event = stamps, None
        if stamps.is_cuda:
            self._flag = torch.empty((), dtype=torch.bool, pin_memory=True)
            self._flag.copy_(self._compute(), non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
            self._stamps = None

    def _compute(self) -> torch.Tensor:
        n, c, h, w = self._stamps.shape
        return torch.isfinite(self._stamps.reshape(n, c, h * w)[:, :, _geometry_on(h, str(self._stamps.device))[1]]).all()

    def __bool__(self) -> bool:
        if self._event is None:
            return bool(self._compute())
        self._event.synchronize()
        return bool(self._flag)


def annulus_snr(stamps: torch.Tensor, sigma: torch.Tensor | None = None,
                finite: AnnulusFinite | None = None) -> torch.Tensor:
    """(N, 3) integrated annulus S/N of (N, 3, H, W) stamps in nmgy/pixel (any device).
    ``sigma`` (N, 3): the per-pixel noise to divide by; default ``outer_sigma(stamps)``.
    ``finite``: ``AnnulusFinite(stamps)`` made earlier (else checked here, a host sync on a GPU)."""
    n, c, h, w = stamps.shape
    pad, ann_idx, ann_ring, _ = _geometry_on(h, str(stamps.device))
    flat = stamps.reshape(n, c, h * w)
    ann = flat[:, :, ann_idx]  # the annulus = the union of its 1-px rings, in the stamps' dtype
    if ann.is_cuda and RING_MEDIANS_SORTED:
        med = ring_medians_sorted(flat)
    elif ann.is_cuda and bool(torch.isfinite(ann).all() if finite is None else finite):  # ring by ring at its own width
        # selected in the stamps' dtype, averaged in float64 (exact)
        med = torch.stack([median_last_finite(flat[:, :, ring], torch.float64) for ring in _ring_index(h, str(ann.device))],
                          dim=-1)
    else:
        x = flat.to(torch.float64)
        xs = torch.cat([x, torch.full((n, c, 1), float("nan"), dtype=x.dtype, device=x.device)], dim=2)
        med = nanmedian_last(xs[:, :, pad])  # (N, C, rings)
    med = torch.nan_to_num(med, nan=0.0)
    resid = ann.to(torch.float64) - med[:, :, ann_ring]  # gathered, then widened: the same values (exact casts)
    flux = torch.nan_to_num(resid, nan=0.0).sum(-1)
    if sigma is None:
        sigma = outer_sigma(stamps)
    return flux / (sigma.to(flux.dtype) * np.sqrt(len(ann_idx)))
