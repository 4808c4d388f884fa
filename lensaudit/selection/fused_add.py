"""The arc, its noise and the host added in one pass on a GPU, with the float64 pixel terms of
the per-injection statistics: the values of the torch path of ``selection.inject`` to the bit.

The torch path (``inject.inject_batch``, then ``visibility.matched_energy`` and
``inject.added_rms``) walks the (N, 3, H, W) stamps about a dozen times: arc = image x
transmission, the arc's Poisson-like sigma sqrt(max(arc, 0) x sigma_pix^2 / sky), noise =
N(0, 1) x sigma, signal = arc + noise, the host's stamp gathered, host + signal, then float64
copies of the arc and of the signal for (arc / sigma_host)^2 and signal^2.  ``add_arc`` reads
the rendered image, the normal draws and the host once and writes the injected stamp, the
signal and the two float64 terms once (~3x fewer bytes through memory).  Every operation is
the torch path's, in its order and precision: float32 products and sums rounded one at a
time (the kernel is compiled without fused multiply-adds), the correctly rounded square root
(``sqrt_rn``) and float64 quotient (PTX has no other), ``max(arc, 0)`` as ``torch.clamp`` (NaN kept);
the float64 squares of float32 values are exact.  The per-stamp sums stay in torch, over the
same (N, 3, H, W) float64 layout and by the same functions (``visibility.matched_energy_of_terms``,
``inject.added_rms_of_squares``), so they are the same reductions of the same values.  The
normal draws come from the caller's generator as before (same draws, same order).

The kernel runs on CUDA tensors; on the CPU only in Triton's interpreter (TRITON_INTERPRET=1
set before triton is imported: the equality tests), never in the CPU path of the audit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import torch

BLOCK = 1024


@dataclass(frozen=True)
class Added:
    """What ``add_arc`` writes, all (N, C, H, W): the injected stamps (host + signal) and the
    signal (arc + noise) in float32, the float64 terms (added arc / sigma_host)^2 and signal^2."""

    stamps: torch.Tensor
    signal: torch.Tensor
    arc_energy_terms: torch.Tensor
    signal_squares: torch.Tensor


@lru_cache(maxsize=1)
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def add_arc_kernel(img_ptr, normal_ptr, host_ptr, pos_ptr, trans_ptr, noise_fac_ptr, sigma_ptr,
                       stamps_ptr, signal_ptr, energy_ptr, squares_ptr, HW, C: tl.constexpr, NULL: tl.constexpr,
                       BLOCK: tl.constexpr):
        row = tl.program_id(0)  # stamp b, band c: row b * C + c
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        m = offs < HW
        b = row // C
        c = row - b * C
        at = row.to(tl.int64) * HW + offs
        host_at = (tl.load(pos_ptr + b).to(tl.int64) * C + c) * HW + offs
        arc = tl.load(img_ptr + at, mask=m, other=0.0) * tl.load(trans_ptr + row)  # image x transmission
        z = tl.where(arc < 0.0, 0.0, arc)  # torch.clamp(min=0): NaN stays NaN
        sd = tl.math.sqrt_rn(z * tl.load(noise_fac_ptr + row))
        noise = tl.load(normal_ptr + at, mask=m, other=0.0) * sd
        if NULL:  # a null control adds the noise alone
            added = tl.zeros_like(arc)
        else:
            added = arc
        signal = added + noise
        tl.store(signal_ptr + at, signal, mask=m)
        tl.store(stamps_ptr + at, tl.load(host_ptr + host_at, mask=m, other=0.0) + signal, mask=m)
        q = added.to(tl.float64) / tl.load(sigma_ptr + row)  # float64: PTX divides only as div.rn.f64
        tl.store(energy_ptr + at, q * q, mask=m)
        s64 = signal.to(tl.float64)
        tl.store(squares_ptr + at, s64 * s64, mask=m)

    return add_arc_kernel


def usable(*tensors: torch.Tensor) -> bool:
    """Whether ``add_arc`` can run on these tensors: all on one CUDA device, or Triton's
    interpreter chosen for this process (the CPU equality tests)."""
    if any(t.is_cuda for t in tensors):
        return all(t.is_cuda for t in tensors) and len({t.device for t in tensors}) == 1
    return os.environ.get("TRITON_INTERPRET") == "1" and type(_kernel()).__name__ == "InterpretedFunction"


def add_arc(images: torch.Tensor, transmission: torch.Tensor, noise_factor: torch.Tensor, normal: torch.Tensor,
            host_stamps: torch.Tensor, host_pos: torch.Tensor, sigma_host: torch.Tensor, null: bool = False) -> Added:
    """``Added`` for rendered unit images ``images`` (N, C, H, W) float32, dimmed by ``transmission``
    (N, C) float32, given the noise ``normal`` (N, C, H, W) float32 x sqrt(max(arc, 0) x
    ``noise_factor``) (N, C) float32 (sigma_pix^2 / sky, ``inject.arc_noise_factor``), added to
    ``host_stamps[host_pos]`` ((H, C, H, W) float32, ``host_pos`` (N,) int64 on the same device, each in
    [0, H): the caller checks, on the host, as ``inject.inject_batch`` does; a check here would synchronise);
    ``sigma_host`` (N, C) float64: the matched-filter noise of each injection's host.
    ``null``: the noise alone is added (a null control), the arc's terms are (0 / sigma)^2."""
    n, c, h, w = images.shape
    hw = h * w
    if not (images.dtype == normal.dtype == host_stamps.dtype == torch.float32):
        raise ValueError("add_arc takes float32 images, draws and host stamps")
    if normal.shape != images.shape or host_stamps.shape[1:] != images.shape[1:] or host_pos.shape != (n,):
        raise ValueError(f"add_arc: shapes {tuple(images.shape)}, {tuple(normal.shape)}, "
                         f"{tuple(host_stamps.shape)}, {tuple(host_pos.shape)} do not fit")
    dev = images.device
    out = Added(torch.empty_like(images), torch.empty_like(images),
                torch.empty(images.shape, dtype=torch.float64, device=dev),
                torch.empty(images.shape, dtype=torch.float64, device=dev))
    if n:
        grid = (n * c, -(-hw // BLOCK))
        _kernel()[grid](images.contiguous(), normal.contiguous(), host_stamps.contiguous(),
                        host_pos.to(torch.int64).contiguous(), transmission.to(torch.float32).contiguous(),
                        noise_factor.to(torch.float32).contiguous(), sigma_host.to(torch.float64).contiguous(),
                        out.stamps, out.signal, out.arc_energy_terms, out.signal_squares, hw, C=c, NULL=bool(null),
                        BLOCK=BLOCK, enable_fp_fusion=False)
    return out
