"""``raw_robust`` preprocessing (DESIGN s3 "Detector"), shared by training, evaluation,
and the selection function's scoring (never copied).

Per band: subtract the median and divide by 1.4826 x MAD of the outer annulus
20 <= r <= 32 px (r from the centre pixel), clip to +-10, then take the centre crop
(64 px by default, 101 for the full stamp).  Medians are exact (the mean of the two middle
values for an even count, NaN pixels ignored: numpy's ``nanmedian``).  NaN pixels
become 0 after normalisation (the QC already rejected stamps with NaN in the core or
> 2 % NaN centrally).  A band whose annulus has MAD 0 or no finite pixel is set to 0 and
reported.  The crop starts at pixel (H - crop) // 2: for 64 of 101 that is 18..81, so the
stamp centre (50, 50) falls on crop pixel (32, 32).
One implementation in torch: numpy in -> numpy out (on the CPU); a torch tensor stays on
its device (the GPU path of training and of the selection function).
Input (N, 3, H, W) float32 nmgy per pixel; output (N, 3, crop, crop) float32.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from lensaudit.stamps import radius_map

ANNULUS_PX = (20.0, 32.0)
CLIP = 10.0
MAD_TO_SIGMA = 1.4826
#: CUDA tensors go through the one-pass Triton kernel (``detector.robust_kernel``: the same values to
#: the bit as the torch operations, tested in Triton's interpreter and, by ``bench/check_robust_kernel.py``,
#: against torch's CUDA operations on an H100) when True; 5.9x the torch operations' rate there at 101²
#: (bench/RESULTS.md "Session 22").  False: the torch operations, as before.
KERNEL_ON_CUDA = True


def _annulus_mask(size: int) -> np.ndarray:
    r = radius_map(size)
    return (r >= ANNULUS_PX[0]) & (r <= ANNULUS_PX[1])


@lru_cache(maxsize=8)
def input_window(size: int, crop: int = 64) -> tuple[int, int]:
    """The square window ``[start, stop)`` (rows and columns) of a ``size``-px stamp that
    ``raw_robust(., crop)`` reads: the smallest one centred like the stamp that holds the
    crop and the whole annulus.  ``raw_robust(x[..., a:b, a:b], crop)`` equals
    ``raw_robust(x, crop)`` exactly (the same pixels, the same centre), so a scan reads only
    the window from the store: 65 px of 101 for the 64 px crop (41 % of the bytes)."""
    if not 0 < crop <= size:
        raise ValueError(f"crop {crop} does not fit a {size}-px stamp")
    full = _annulus_mask(size)
    for width in range(crop, size + 1):
        start = (size - width) // 2
        if (size - width) % 2 == 0 and full[start:start + width, start:start + width].sum() == full.sum():
            return start, start + width
    return 0, size


@lru_cache(maxsize=16)
def _annulus_index(size: int, device: str, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    return torch.from_numpy(np.flatnonzero(_annulus_mask(size))).to(device=device, dtype=dtype)


def median_last_finite(a: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Exact median along the last axis of an all-finite tensor (the mean of the two middle
    values for an even count), from one ``torch.median`` (a selection, not a full sort; it
    returns the lower middle value); the upper middle value is the lower one when more than
    half the values are <= it, else the smallest value above it.  The same values as
    ``nanmedian_last`` without NaN.  ``out_dtype``: the dtype the two middle values are
    averaged in (float32 values selected in float32 and averaged in float64 equal the
    float64 median of their float64 casts)."""
    out_dtype = out_dtype or a.dtype
    n = a.shape[-1]
    lo = torch.median(a, dim=-1).values
    if n % 2:
        return lo.to(out_dtype)
    hi = _upper_middle(a, lo, n)
    return (lo.to(out_dtype) + hi.to(out_dtype)) / 2


def _upper_middle(a: torch.Tensor, lo: torch.Tensor, k) -> torch.Tensor:
    """The upper of the two middle values of each row of ``a`` (NaN entries are never counted:
    comparisons with NaN are false), given its lower middle value ``lo`` and its count ``k`` of
    values (even): ``lo`` itself when more than k / 2 values are <= it, else the smallest value above it."""
    above = torch.where(a > lo[..., None], a, torch.full_like(a, float("inf"))).amin(dim=-1)
    return torch.where((a <= lo[..., None]).sum(dim=-1) >= k // 2 + 1, lo, above)


def nanmedian_last(a: torch.Tensor) -> torch.Tensor:
    """Exact median along the last axis ignoring non-finite values (NaN and +-inf are
    missing; the mean of the two middle values for an even count; NaN where no value is
    finite) -- numpy ``nanmedian`` of the finite values.  One ``torch.nanmedian`` (a
    selection, not a sort; it returns the lower middle value) plus the upper-middle rule of
    ``median_last_finite``, with no host synchronisation on a GPU."""
    if a.shape[-1] == 0:
        return torch.full(a.shape[:-1], float("nan"), dtype=a.dtype, device=a.device)
    finite = torch.isfinite(a)
    a = torch.where(finite, a, torch.full_like(a, float("nan")))
    k = finite.sum(dim=-1)
    lo = torch.nanmedian(a, dim=-1).values
    med = torch.where(k % 2 == 0, (lo + _upper_middle(a, lo, k)) / 2, lo)
    return torch.where(k > 0, med, torch.full_like(med, float("nan")))


@lru_cache(maxsize=1)
def _triton_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("triton") is not None


def _use_kernel(x, kernel: bool | None) -> bool:
    """``raw_robust``'s choice: an explicit ``kernel`` stands (True without a usable kernel is an
    error there); by default the kernel on CUDA tensors when ``KERNEL_ON_CUDA`` is set and Triton is
    installed (a CUDA torch without Triton keeps the torch operations: the same values)."""
    if kernel is not None:
        return bool(kernel)
    return bool(x.is_cuda and KERNEL_ON_CUDA and _triton_available())


def raw_robust(stamps, crop: int = 64, channels_last: bool = False, kernel: bool | None = None):
    """(normalised stamps, degenerate (N, 3) bool: bands that could not be normalised).

    ``channels_last``: a tensor result in that memory format (the model input of the scan and of
    the selection function's scoring; the same values).  ``kernel``: the one-pass Triton kernel
    (``detector.robust_kernel``, the same values to the bit) instead of the torch operations;
    by default on CUDA tensors when ``KERNEL_ON_CUDA`` is set and Triton is installed."""
    as_numpy = isinstance(stamps, np.ndarray)
    x = torch.as_tensor(stamps, dtype=torch.float32)
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(x.shape)}")
    n, c, h, w = x.shape
    if h != w or not 0 < crop <= h:
        raise ValueError(f"crop {crop} does not fit a {h}x{w} stamp")
    if _use_kernel(x, kernel):
        from lensaudit.detector import robust_kernel

        if not robust_kernel.usable(x):
            raise RuntimeError("the raw_robust kernel needs a CUDA tensor (or TRITON_INTERPRET=1 set before "
                               "triton is first imported)")
        y, degenerate = robust_kernel.raw_robust_kernel(
            x, crop, _annulus_index(h, str(x.device), torch.int32), MAD_TO_SIGMA, CLIP, channels_last)
        if as_numpy:
            return y.numpy(), degenerate.numpy()
        return y, degenerate
    ann = x.reshape(n, c, h * w).index_select(2, _annulus_index(h, str(x.device)))
    med = nanmedian_last(ann)
    mad = MAD_TO_SIGMA * nanmedian_last((ann - med[..., None]).abs())
    degenerate = ~torch.isfinite(mad) | (mad <= 0)
    scale = torch.where(degenerate, torch.ones_like(mad), mad)
    shift = torch.where(degenerate, torch.zeros_like(med), med)
    off = (h - crop) // 2
    y = (x[:, :, off:off + crop, off:off + crop] - shift[..., None, None]) / scale[..., None, None]
    y = torch.clamp(torch.nan_to_num(y, nan=0.0), -CLIP, CLIP)
    y = torch.where(degenerate[..., None, None], torch.zeros_like(y), y)
    if as_numpy:
        return y.numpy().astype(np.float32), degenerate.numpy()
    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    return y, degenerate


def crop_nmgy(stamps, crop: int = 64):
    """The centre crop of the raw stamps, still in nmgy per pixel (NaN pixels set to 0), for
    a model that normalises its input itself.  Same crop convention as ``raw_robust``."""
    x = torch.as_tensor(stamps, dtype=torch.float32)
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(x.shape)}")
    h = x.shape[-1]
    if x.shape[-2] != h or not 0 < crop <= h:
        raise ValueError(f"crop {crop} does not fit a {x.shape[-2]}x{h} stamp")
    off = (h - crop) // 2
    return torch.nan_to_num(x[:, :, off:off + crop, off:off + crop], nan=0.0)


#: preprocessings an external detector can name in its input spec: (stamps (N, C, H, W)
#: nmgy, crop) -> (N, C, crop, crop) float32 model input
PREPROCESSINGS = {
    "raw_robust": lambda stamps, crop: raw_robust(stamps, crop=crop)[0],
    "crop_nmgy": crop_nmgy,
}
