"""Geometry of square stamps: radius from the centre pixel, azimuthal-median profiles.

Radii are in pixels from pixel ((N-1)/2, (N-1)/2) (pixel 50, 50 of a 101 stamp).
"""

from __future__ import annotations

import warnings

import numpy as np

from lensaudit.order_stats import median_rows


def radius_map(npix: int) -> np.ndarray:
    c = (npix - 1) / 2
    yy, xx = np.mgrid[:npix, :npix]
    return np.hypot(xx - c, yy - c)


def azimuthal_median(images: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Image of the median of each 1-px ring (``floor(r)``) of every (H, W) image of ``images``
    (any leading shape: one band, a (C, H, W) stamp, an (N, H, W) block), float64.  Non-finite
    pixels are ignored; a ring without a finite pixel has median 0.  Each ring's pixels are
    gathered into one (images, n_ring) block, so a block of images costs one median call per ring
    (``order_stats.median_rows`` when every pixel is finite: np.median's values, sorted rows)."""
    x = np.asarray(images, dtype=np.float64)
    lead = x.shape[:-2]
    ring = np.floor(r).astype(int).ravel()
    order = np.argsort(ring, kind="stable")
    edges = np.searchsorted(ring[order], np.arange(ring.max() + 2))
    flat = x.reshape(-1, ring.size)[:, order]
    finite = np.isfinite(flat).all()
    if not finite:
        flat = np.where(np.isfinite(flat), flat, np.nan)
    med = np.zeros((len(flat), ring.max() + 1))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN ring: median 0 below
        for k in range(ring.max() + 1):
            if edges[k + 1] > edges[k]:
                block = flat[:, edges[k]:edges[k + 1]]
                med[:, k] = median_rows(block) if finite else np.nanmedian(block, axis=1)
    med = np.nan_to_num(med, nan=0.0)
    return med[:, ring].reshape(*lead, *r.shape)
