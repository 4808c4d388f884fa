"""Correlated pixel noise of Legacy Surveys coadd cutouts.

Coadds are resampled (Lanczos) sums of exposures, so neighbouring pixels share noise:
the sum of a k x k block of sky pixels scatters more than ``k * sigma_pixel`` (what
independent pixels would give).  The *block-noise factor*

    factor = sigma(k x k block sums) / (k * sigma_pixel)        [dimensionless]

is 1 for white noise and > 1 for positively correlated noise; factor^2 is the ratio of
the block-sum variance to its white-noise expectation.  Injected arcs that are given
white noise at the per-pixel level are therefore too smooth on the scales of an arc.

Method (``block_noise_factor``): sky pixels are those outside ``exclude_radius_pix`` of
the stamp centre (the target galaxy), finite, and not flagged as sources (|x - median| >
``clip_sigma`` sigma, or a 3x3 box mean above ``clip_sigma`` times its own white-noise
sigma), the source mask grown by ``grow_pix`` pixels.  sigma_pixel is the MAD-based sigma
of the sky pixels; block sums are taken over every k x k block made only of sky pixels,
at all k^2 grid offsets, and their sigma is MAD-based too (robust to faint sources left
in).  Masking sources also masks the highest noise peaks, so the factor of white noise
comes out ~2% low (0.98); without the mask, faint sources inflate it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from lensaudit.survey.instrument import BANDS

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class NoiseCorrelation:
    """factor: sigma_block / (block * sigma_pix) [dimensionless, 1 = white];
    sigma_pix: per-pixel noise [image units, nmgy/pixel for Legacy Surveys cutouts];
    sigma_block: noise of block sums [same units]; block: block side [pixels];
    n_pixels: sky pixels used; n_blocks: blocks used (over all grid offsets, so
    overlapping, not independent)."""

    factor: float
    sigma_pix: float
    sigma_block: float
    block: int
    n_pixels: int
    n_blocks: int


def _mad_sigma(x: np.ndarray) -> float:
    return float(MAD_TO_SIGMA * np.median(np.abs(x - np.median(x))))


def sky_mask(image: np.ndarray, exclude_radius_pix: float = 20.0, clip_sigma: float = 5.0,
             grow_pix: int = 2) -> np.ndarray:
    """Boolean mask of sky pixels of one band (see the module docstring)."""
    from scipy import ndimage

    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    yy, xx = np.mgrid[:h, :w]
    finite = np.isfinite(img)
    outer = finite & (np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) > exclude_radius_pix)
    if outer.sum() < 10:
        return outer
    med, sig = np.median(img[outer]), _mad_sigma(img[outer])
    if not sig > 0:
        return np.zeros_like(outer)
    resid = np.where(finite, img - med, 0.0)
    smooth = ndimage.uniform_filter(resid, 3, mode="constant")
    source = (np.abs(resid) > clip_sigma * sig) | (smooth > clip_sigma * sig / 3.0)
    if grow_pix > 0:
        source = ndimage.binary_dilation(source, iterations=grow_pix)
    return outer & ~source


def block_noise_factor(image: np.ndarray, block: int = 5, exclude_radius_pix: float = 20.0,
                       clip_sigma: float = 5.0, grow_pix: int = 2, min_blocks: int = 100) -> NoiseCorrelation:
    """The block-noise factor of one band of a stamp (2-D array, any flux unit).

    Raises ValueError when it cannot be computed (fewer than ``min_blocks`` all-sky blocks,
    or zero pixel noise): never a default value.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or block < 1:
        raise ValueError(f"need a 2-D image and block >= 1, got shape {img.shape}, block {block}")
    sky = sky_mask(img, exclude_radius_pix, clip_sigma, grow_pix)
    n_pix = int(sky.sum())
    if n_pix < block * block * min_blocks / 4:
        raise ValueError(f"only {n_pix} sky pixels: the noise factor cannot be computed")
    med = np.median(img[sky])
    sig_pix = _mad_sigma(img[sky])
    if not sig_pix > 0:
        raise ValueError("sky pixel noise is zero: the noise factor cannot be computed")
    resid = np.where(sky, img - med, 0.0)
    sums = []
    h, w = img.shape
    for dy in range(block):
        for dx in range(block):
            ny, nx = (h - dy) // block, (w - dx) // block
            sl = (slice(dy, dy + ny * block), slice(dx, dx + nx * block))
            ok = sky[sl].reshape(ny, block, nx, block).all(axis=(1, 3))
            sums.append(resid[sl].reshape(ny, block, nx, block).sum(axis=(1, 3))[ok])
    s = np.concatenate(sums)
    if len(s) < min_blocks:
        raise ValueError(f"only {len(s)} all-sky {block}x{block} blocks (< {min_blocks}): the noise factor cannot be computed")
    sig_block = _mad_sigma(s)
    return NoiseCorrelation(sig_block / (block * sig_pix), sig_pix, sig_block, block, n_pix, int(len(s)))


def stamp_noise_factors(stamp: np.ndarray, bands: str = BANDS, **kwargs) -> dict[str, NoiseCorrelation]:
    """``block_noise_factor`` of each band of a (C, H, W) stamp."""
    stamp = np.asarray(stamp)
    if stamp.ndim != 3 or stamp.shape[0] != len(bands):
        raise ValueError(f"need a ({len(bands)}, H, W) stamp for bands {bands!r}, got shape {stamp.shape}")
    return {b: block_noise_factor(stamp[i], **kwargs) for i, b in enumerate(bands)}


def expected_factor(kernel: np.ndarray, block: int = 5) -> float:
    """Exact block-noise factor of white noise convolved with ``kernel`` (2-D):
    sqrt(sum((box_k * kernel)^2) / (k^2 sum(kernel^2))); 1 for a delta kernel."""
    from scipy.signal import convolve2d

    k = np.asarray(kernel, dtype=np.float64)
    box = convolve2d(np.ones((block, block)), k, mode="full")
    return float(np.sqrt((box ** 2).sum() / (block * block * (k ** 2).sum())))


#: the largest block-noise factor ``correlation_kernel`` builds (a Gaussian of sigma ~1.3 px at 5x5)
MAX_KERNEL_FACTOR = 3.0


def correlation_kernel(block_factor: float, block: int = 5) -> np.ndarray:
    """A small circular Gaussian kernel (2-D, odd side, half-width ceil(4 sigma) px) that gives
    white noise the block-noise factor ``block_factor`` at ``block`` x ``block``
    (``expected_factor(kernel, block) == block_factor`` to 1e-6), normalised to
    sum(kernel^2) = 1 so that the convolved noise keeps the per-pixel sigma of the white noise.
    ``block_factor`` 1 gives the 1x1 kernel [[1]] (white noise).  The Gaussian's sigma is found
    by bisection (the factor grows monotonically with it).  A smooth Gaussian approximates the
    Lanczos resampling and stacking that correlate coadd noise; only its block factor is matched.
    ValueError outside 1 <= block_factor <= ``MAX_KERNEL_FACTOR``."""
    f = float(block_factor)
    if not 1.0 <= f <= MAX_KERNEL_FACTOR:
        raise ValueError(f"block_factor must be within [1, {MAX_KERNEL_FACTOR}] (1 = white noise), got {block_factor!r}")
    return _correlation_kernel(round(f, 9), int(block)).copy()


def _gaussian_unit_kernel(sigma_pix: float) -> np.ndarray:
    h = max(1, int(np.ceil(4.0 * sigma_pix)))
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
    k = np.exp(-(xx ** 2 + yy ** 2) / (2.0 * sigma_pix ** 2))
    return k / np.sqrt((k ** 2).sum())


@lru_cache(maxsize=16)
def _correlation_kernel(f: float, block: int) -> np.ndarray:
    if f == 1.0:
        return np.ones((1, 1))
    lo, hi = 1e-3, 3.0  # expected_factor: 1.0 at lo, > MAX_KERNEL_FACTOR at hi for block 5
    if expected_factor(_gaussian_unit_kernel(hi), block) < f:
        raise ValueError(f"no Gaussian kernel up to sigma {hi} px reaches block factor {f} at {block}x{block}")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if expected_factor(_gaussian_unit_kernel(mid), block) < f:
            lo = mid
        else:
            hi = mid
    return _gaussian_unit_kernel(0.5 * (lo + hi))
