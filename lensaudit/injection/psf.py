"""Moffat PSF kernels and 'same' convolution (zero padding), batched.

Moffat: P(r) proportional to (1 + (r/alpha)^2)^(-beta), alpha = FWHM / (2 sqrt(2^(1/beta) - 1))
(Moffat 1969; Trujillo et al. 2001).  Kernels are sampled at pixel centres on a
(2h+1)^2 grid with h = ceil(radius_fwhm x FWHM_max / pixscale) (radius >= 4 FWHM by default)
and normalised to unit sum, one kernel per image and band.
"""

from __future__ import annotations

import math

import torch


def moffat_alpha(fwhm_arcsec, beta):
    return fwhm_arcsec / (2 * torch.sqrt(2 ** (1 / beta) - 1))


def kernel_half_width(fwhm_max_arcsec: float, pixscale: float, radius_fwhm: float = 4.0) -> int:
    return int(math.ceil(radius_fwhm * fwhm_max_arcsec / pixscale))


def moffat_kernels(fwhm_arcsec: torch.Tensor, beta: torch.Tensor, pixscale: float, half_width: int) -> torch.Tensor:
    """(..., 2h+1, 2h+1) unit-sum kernels for fwhm/beta of shape (...)."""
    ax = torch.arange(-half_width, half_width + 1, dtype=fwhm_arcsec.dtype, device=fwhm_arcsec.device) * pixscale
    r2 = ax[None, :] ** 2 + ax[:, None] ** 2
    alpha = moffat_alpha(fwhm_arcsec, beta)[..., None, None]
    k = (1 + r2 / alpha**2) ** (-beta[..., None, None])
    return k / k.sum(dim=(-2, -1), keepdim=True)


def moffat_spectra(fwhm_arcsec: torch.Tensor, beta: torch.Tensor, pixscale: float, half_width: int, n: int,
                   dtype=torch.float64) -> torch.Tensor:
    """(..., n, n // 2 + 1) ``dtype``: the size-n real 2-D DFT (``rfft2`` layout) of the unit-sum
    ``moffat_kernels`` centred on pixel (0, 0) (kernel pixel (dy, dx) at index (dy mod n, dx mod n)),
    without an FFT.  The kernel is even in x and in y, so its transform is real and separable
    in the cosine basis: K(u, v) = sum_{a, b = 0..h} w_a w_b k(a, b) cos(2 pi u a / n) cos(2 pi v b / n)
    (w_0 = 1, else 2), two small matrix products of the (h+1)^2 quadrant (a quarter of the
    kernel evaluated), for u <= n // 2 only (K(n - u, v) = K(u, v)); the unit sum is K(0, 0).
    Mathematically the transform of the centred ``moffat_kernels`` (float rounding apart; the
    float32 products run at full float32 precision, never TF32).  Circular convolution of an
    H-pixel image with it, for n >= H + h, gives the 'same' window in indices [0, H) (see
    ``convolve_same``)."""
    half = moffat_half_spectra(fwhm_arcsec, beta, pixscale, half_width, n, dtype)
    half = half / half[..., :1, :1]
    return torch.cat([half, half[..., 1:(n + 1) // 2, :].flip(-2)], dim=-2)


def moffat_half_spectra(fwhm_arcsec: torch.Tensor, beta: torch.Tensor, pixscale: float, half_width: int, n: int,
                        dtype=torch.float64) -> torch.Tensor:
    """The rows u <= n // 2 of ``moffat_spectra`` before the unit-sum normalisation, (..., n // 2 + 1,
    n // 2 + 1): the kernels' sum is entry [0, 0] (row n - u of the full spectrum is row u)."""
    dev = fwhm_arcsec.device
    a = torch.arange(half_width + 1, dtype=dtype, device=dev)
    ax = a * pixscale
    r2 = ax[None, :] ** 2 + ax[:, None] ** 2
    alpha = moffat_alpha(fwhm_arcsec.to(dtype), beta.to(dtype))[..., None, None]
    q = (1 + r2 / alpha**2) ** (-beta.to(dtype)[..., None, None])  # (..., h+1, h+1) quadrant, rows y, columns x
    w = torch.where(a == 0, 1.0, 2.0).to(dtype)
    # cos(2 pi u a / n) with u a reduced mod n first (exact integers), u = 0 .. n // 2
    u = torch.arange(n // 2 + 1, dtype=torch.int64, device=dev)
    c = torch.cos((2 * math.pi / n) * ((u[:, None] * a.long()[None, :]) % n).to(torch.float64)).to(dtype) * w
    prev = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        half = c @ (q @ c.T)  # (..., n // 2 + 1, n // 2 + 1): rows u <= n // 2
    finally:
        torch.set_float32_matmul_precision(prev)
    return half


def fast_fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (pocketfft and cuFFT are fastest on such sizes)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def convolve_same(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """'same'-size linear convolution with zero padding, per image and band, via FFT.

    images (B, C, H, W) or (B, 1, H, W) shared by all C bands; kernels (B, C, K, K) with
    K odd.  Equals scipy.signal.fftconvolve(image, kernel, mode='same') for each (b, c):
    the circular transform is padded to at least H + K//2 (rounded up to a fast FFT size):
    a circular convolution of size N aliases full-convolution index i onto i - N, and the
    full (H + K - 1)-long result folds only onto indices < H + K - 1 - N <= K//2, which lie
    before the 'same' window [K//2, K//2 + H): the window is exact (101 px stamps with a
    63 px kernel transform at 135 instead of 180, 1.8x fewer points).
    """
    B, C, H, W = images.shape
    K = kernels.shape[-1]
    h = K // 2
    fh, fw = fast_fft_size(H + h), fast_fft_size(W + h)
    fi = torch.fft.rfft2(images, s=(fh, fw))
    fk = torch.fft.rfft2(kernels, s=(fh, fw))
    full = torch.fft.irfft2(fi * fk, s=(fh, fw))
    return full[..., h:h + H, h:h + W]
