"""``raw_robust`` in one Triton kernel for a GPU: the values of ``preprocess.raw_robust``'s torch
path to the bit (tested in Triton's interpreter; ``bench/check_robust_kernel.py`` compares it with
torch's CUDA operations: equal on an H100, bench/RESULTS.md "Session 22"; ``preprocess.KERNEL_ON_CUDA``,
on by default), in one pass over each stamp.

The torch path makes each band's statistics with two ``torch.nanmedian`` selections over the
annulus (the median, then the median of the absolute deviations), each a radix select that
re-reads the 1,964 annulus values from memory about 16 times, plus the ``_upper_middle``
reductions for an even count and the crop's elementwise steps.  Here one program per (stamp,
band) loads the annulus into registers once and selects there:

  * the ``(k + 1) // 2``-th smallest of the ``k`` finite values (the lower middle one, what
    ``torch.nanmedian`` returns) by bisection over the order-preserving integer image of the
    float32 bits (32 halvings of the signed 32-bit range, each a count of the values at or
    below the midpoint), so it is exactly one of the values, not an interpolation;
  * for an even ``k`` the upper middle value by ``preprocess._upper_middle``'s rule, and the
    median as their float32 sum times 0.5 (the same rounding as torch's ``/ 2``);
  * the same again for ``|x - median|`` (non-finite deviations dropped as in torch), times
    ``MAD_TO_SIGMA`` in float32;
then the crop ``(x - median) / (1.4826 MAD)`` with the IEEE quotient (``div_rn``; Triton's
``/`` is an approximate one), NaN to 0, clipped to +-``CLIP``, a degenerate band 0.  The
kernel is compiled without fused multiply-adds, so every float32 operation is rounded as in
torch.  The output can be written straight into a channels_last tensor (the scan's model
input), which saves the copy that ``.contiguous(memory_format=torch.channels_last)`` makes.

The kernel runs on CUDA tensors; on the CPU only in Triton's interpreter (TRITON_INTERPRET=1
set before triton is imported: the equality tests, ``test_robust_kernel``), never in the
CPU path of the audit.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

#: pixels of the crop per block of the normalisation loop
BLOCK = 1024


@triton.jit
def _lower_middle(v, fin, k):
    """The ((k + 1) // 2)-th smallest finite value of ``v`` (k >= 1 finite values)."""
    bits = v.to(tl.int32, bitcast=True)
    key = tl.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)  # float order as signed integers
    need = (k + 1) // 2
    lo = tl.full([], -2147483648, tl.int64)
    hi = tl.full([], 2147483647, tl.int64)
    for _ in range(32):  # hi - lo + 1 = 2^32 keys, halved 32 times
        mid = lo + (hi - lo) // 2
        cnt = tl.sum((fin & (key.to(tl.int64) <= mid)).to(tl.int32), axis=0)
        hi = tl.where(cnt >= need, mid, hi)
        lo = tl.where(cnt >= need, lo, mid + 1)
    return tl.max(tl.where(fin & (key.to(tl.int64) <= lo), v, float("-inf")), axis=0)


@triton.jit
def _nanmedian(v):
    """``preprocess.nanmedian_last`` of one row held in registers."""
    fin = (v == v) & (tl.abs(v) < float("inf"))
    k = tl.sum(fin.to(tl.int32), axis=0)
    lo = _lower_middle(v, fin, tl.maximum(k, 1))
    # preprocess._upper_middle: lo itself when more than k / 2 values are <= it, else the smallest above it
    above = tl.min(tl.where(fin & (v > lo), v, float("inf")), axis=0)
    hi = tl.where(tl.sum((fin & (v <= lo)).to(tl.int32), axis=0) >= k // 2 + 1, lo, above)
    med = tl.where(k % 2 == 0, (lo + hi) * 0.5, lo)
    return tl.where(k > 0, med, float("nan"))


@triton.jit
def raw_robust_kernel_(x_ptr, ann_ptr, out_ptr, deg_ptr, HW, W, NA, OFF, CROP, s_n, s_c, s_h, s_w,
                       mad_to_sigma, clip, C: tl.constexpr, BLOCK_A: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)  # stamp b, band c: row b * C + c
    b = row // C
    c = row - b * C
    base = x_ptr + row.to(tl.int64) * HW
    lane = tl.arange(0, BLOCK_A)
    am = lane < NA
    v = tl.load(base + tl.load(ann_ptr + lane, mask=am, other=0), mask=am, other=float("nan"))
    med = _nanmedian(v)
    mad = mad_to_sigma * _nanmedian(tl.abs(v - med))
    deg = (tl.abs(mad) < float("inf")) == 0
    deg = deg | (mad <= 0.0)
    tl.store(deg_ptr + row, deg.to(tl.int8))
    scale = tl.where(deg, 1.0, mad)
    shift = tl.where(deg, 0.0, med)
    out = out_ptr + b.to(tl.int64) * s_n + c.to(tl.int64) * s_c
    for start in range(0, CROP * CROP, BLOCK):
        p = start + tl.arange(0, BLOCK)
        pm = p < CROP * CROP
        i = p // CROP
        j = p - i * CROP
        y = tl.math.div_rn(tl.load(base + (i + OFF) * W + (j + OFF), mask=pm, other=0.0) - shift, scale)
        y = tl.where(y != y, 0.0, y)  # torch.nan_to_num(nan=0); +-inf are clipped below
        y = tl.minimum(tl.maximum(y, -clip), clip)
        y = tl.where(deg, 0.0, y)
        tl.store(out + i * s_h + j * s_w, y, mask=pm)


def usable(x: torch.Tensor) -> bool:
    """Whether the kernel can run on ``x``: a CUDA tensor, or Triton's interpreter chosen for this
    process (the CPU equality tests)."""
    if x.is_cuda:
        return True
    return os.environ.get("TRITON_INTERPRET") == "1" and type(raw_robust_kernel_).__name__ == "InterpretedFunction"


def raw_robust_kernel(x: torch.Tensor, crop: int, annulus: torch.Tensor, mad_to_sigma: float, clip: float,
                      channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised (N, C, crop, crop) float32, degenerate (N, C) bool) of contiguous float32 stamps
    ``x`` (N, C, H, H) and the flat pixel indices ``annulus`` of the annulus: ``preprocess.raw_robust``
    (which checks the shapes and calls this on CUDA).  ``channels_last``: the output in that memory
    format (the same values)."""
    n, c, h, w = x.shape
    na = int(annulus.numel())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty((n, c, crop, crop), dtype=torch.float32, device=x.device, memory_format=fmt)
    deg = torch.empty((n, c), dtype=torch.int8, device=x.device)
    if n and c:
        off = (h - crop) // 2
        raw_robust_kernel_[(n * c,)](x.contiguous(), annulus.to(torch.int32), out, deg, h * w, w, na, off, crop,
                                     *out.stride(), float(mad_to_sigma), float(clip), C=c,
                                     BLOCK_A=max(16, 1 << (na - 1).bit_length()), BLOCK=BLOCK, enable_fp_fusion=False)
    return out, deg.bool()
