"""``raw_robust`` preprocessing (DESIGN s3 "Detector"), shared by training, evaluation,
and the selection function's scoring (never copied).

Per band: subtract the median and divide by 1.4826 x MAD of the outer annulus
20 <= r <= 32 px (r from the centre pixel), clip to +-10, then take the centre crop
(64 px by default, 101 for the full stamp).  NaN pixels become 0 after normalisation
(the QC already rejected stamps with NaN in the core or > 2 % NaN centrally).  The crop
starts at pixel (H - crop) // 2: for 64 of 101 that is 18..81, so the stamp centre (50, 50)
falls on crop pixel (32, 32).  A band
whose annulus has MAD 0 or no finite pixel is set to 0 and reported.
Input (N, 3, H, W) float32 nmgy per pixel; output (N, 3, crop, crop) float32.
"""

from __future__ import annotations

import numpy as np

ANNULUS_PX = (20.0, 32.0)
CLIP = 10.0
MAD_TO_SIGMA = 1.4826


def _annulus_mask(size: int) -> np.ndarray:
    c = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(xx - c, yy - c)
    return (r >= ANNULUS_PX[0]) & (r <= ANNULUS_PX[1])


def raw_robust(stamps: np.ndarray, crop: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(normalised stamps, degenerate (N, 3) bool: bands that could not be normalised)."""
    x = np.asarray(stamps, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got {x.shape}")
    n, c, h, w = x.shape
    if h != w or not 0 < crop <= h:
        raise ValueError(f"crop {crop} does not fit a {h}x{w} stamp")
    ann = x[:, :, _annulus_mask(h)]
    med = np.nanmedian(ann, axis=2)
    mad = MAD_TO_SIGMA * np.nanmedian(np.abs(ann - med[..., None]), axis=2)
    degenerate = ~np.isfinite(mad) | (mad <= 0)
    scale = np.where(degenerate, 1.0, mad).astype(np.float32)
    off = (h - crop) // 2
    y = (x[:, :, off:off + crop, off:off + crop] - np.where(degenerate, 0, med)[..., None, None]) / scale[..., None, None]
    y = np.clip(np.nan_to_num(y, nan=0.0), -CLIP, CLIP)
    y[degenerate] = 0.0
    return y.astype(np.float32), degenerate
