"""Geometry of square stamps: radius from the centre pixel, azimuthal-median profiles.

Radii are in pixels from pixel ((N-1)/2, (N-1)/2) (pixel 50, 50 of a 101 stamp).
"""

from __future__ import annotations

import numpy as np


def radius_map(npix: int) -> np.ndarray:
    c = (npix - 1) / 2
    yy, xx = np.mgrid[:npix, :npix]
    return np.hypot(xx - c, yy - c)


def azimuthal_median(image: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Image of the median of each 1-px ring (per band of a (C, H, W) image)."""
    ring = np.floor(r).astype(int)
    out = np.empty_like(image, dtype=np.float64)
    for b in range(image.shape[0]):
        med = np.zeros(ring.max() + 1)
        for k in range(ring.max() + 1):
            vals = image[b][ring == k]
            vals = vals[np.isfinite(vals)]
            med[k] = np.median(vals) if len(vals) else 0.0
        out[b] = med[ring]
    return out


def azimuthal_median_finite(images: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``azimuthal_median`` of N single-band images at once, for all-finite (N, H, W) images:
    the same ring medians (each ring's pixels gathered into one (N, n_ring) block, whose
    per-row median is the one-image median of the same values), float64."""
    ring = np.floor(r).astype(int).ravel()
    order = np.argsort(ring, kind="stable")
    edges = np.searchsorted(ring[order], np.arange(ring.max() + 2))
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)[:, order]
    med = np.zeros((len(images), ring.max() + 1))
    for k in range(ring.max() + 1):
        if edges[k + 1] > edges[k]:
            med[:, k] = np.median(flat[:, edges[k]:edges[k + 1]], axis=1)
    return med[:, ring].reshape(images.shape)
