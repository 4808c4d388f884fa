"""Fused GPU renderer: the adaptive algorithm of ``render.render_unit_lensed_adaptive`` as
two Triton kernels, the PSF as one batched FFT product (``render_arcs(..., fused=True)``).

Same algorithm, same decisions, per pixel:
  1. ``_centre_kernel``: ray-shoot (SIE + shear) every pixel centre -> (bx, by).
  2. ``_pixel_kernel``: per pixel, the source-plane box of its 3x3 neighbours' centres (the
     outside ignored), the supersampling test (box within ``core_radii`` R_s / sqrt(q_src)
     (+ clump extents) of the source centre, or within 1.5 px of the lens centre); such a
     pixel is the mean of its ss x ss sub-pixels (ray shooting + Sersic + clumps + the
     ``suppress_inner`` mask in registers, nothing written per sub-pixel), any other pixel
     its centre value.  A pixel with a sub-pixel that the reference would refine for a cuspy
     core (``CUSP_NEAR``, ``cusp_min_cell``) is flagged (its local stretch written).
  3. flagged pixels (~70 per stamp on the benchmark's rows) are recomputed with the
     reference's cells and rules (``render._supersampled_pixels``: sub-pixels + recursive
     cusp refinement, level by level), each level's evaluations in one ``_cell_kernel``
     launch, the bookkeeping (compaction, weights) in torch as in the reference; so the fused
     image equals the reference's to float32 rounding (tested).  ``CUSP_IN_TRITON = False``
     runs the reference's torch code itself for these pixels.
Per-stamp constants (lens rotation, q, b, Sersic amplitude, the source's inverse shape
matrix, reach, d_min) are computed once per stamp in torch (``stamp_table``).  The
arctangent is Cephes' atanf (range reduction + degree-9 polynomial), arctanh its series
below 0.1 and 0.5 log((1+z)/(1-z)) above, both to float32 precision.

Without a CUDA device the kernels run only in Triton's interpreter (numpy; slow, for the parity
tests on the CPU), which the process chooses with TRITON_INTERPRET=1 in its environment before
triton is first imported (the tests start such a process); this module never sets it (the
variable would leak into every subprocess), and without either the renderer says so.
"""

from __future__ import annotations

import math

import torch

import triton
import triton.language as tl

from lensaudit.injection.cusp import (CUSP_LEVELS, CUSP_MAX_CELLS, CUSP_MIN_FRACTION, CUSP_NEAR, CUSP_SPLIT, subtree_sums,
                                      use_subtree_sums)
from lensaudit.injection.lens import Q_MAX, ellipticity_to_phi_q
from lensaudit.injection.source import R_SMOOTH_ARCSEC, b_n, sersic_unit_flux_amp

# columns of the per-stamp table
(T_CX, T_CY, T_COS, T_SIN, T_Q, T_B, T_SQ, T_SMALL, T_G1, T_G2, T_SX, T_SY, T_AMP, T_RS, T_INVN, T_BN, T_A11, T_A12,
 T_A22, T_REACH2, T_DMIN, T_TE, T_QS, NCOL) = range(24)
# columns of the per-clump table: frac, centre x, y, 1 / (2 sigma^2), frac / (2 pi sigma^2)
C_FRAC, C_X, C_Y, C_INV2S2, C_NORM, NCCOL = range(6)  # NCCOL = 5: the kernels read rows of 5
BLOCK = 256
# the pixel kernel's programs cover tiles of PIXEL_TILE_W x PIXEL_BLOCK / PIXEL_TILE_W pixels: the supersampled
# pixels cluster around the arc, and a program runs its sub-pixel loop for all its pixels when one of them needs
# it, so compact tiles run it for fewer pixels than runs of PIXEL_BLOCK pixels in row order (PIXEL_TILE_W = 0, the
# previous layout); the same values either way
PIXEL_BLOCK = 64
PIXEL_TILE_W = 8


def pixel_grid(npix: int, batch: int) -> tuple[int, int]:
    """The ``_pixel_kernel`` launch grid for (batch, npix, npix) stamps (``PIXEL_BLOCK``, ``PIXEL_TILE_W``)."""
    if PIXEL_TILE_W <= 0:
        return triton.cdiv(npix * npix, PIXEL_BLOCK), batch
    return triton.cdiv(npix, PIXEL_TILE_W) * triton.cdiv(npix, PIXEL_BLOCK // PIXEL_TILE_W), batch
# the flagged (cusp) pixels go through the reference's torch code; on a GPU with its elementwise
# parts torch.compile'd (``render._kernel``), as ``render_arcs(compiled=True)`` does
FIXUP_COMPILED = True
# ... unless CUSP_IN_TRITON: the same cells and decisions, every evaluation in ``_cell_kernel``
CUSP_IN_TRITON = True


_jit = triton.jit
assert R_SMOOTH_ARCSEC == 1e-4  # written as a literal in _source_sb


def stamp_table(p: dict, n_clumps: int, core_radii: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, NCOL) per-stamp constants and (B, max(K, 1), NCCOL) clump constants, float32."""
    f = {k: v for k, v in p.items()}
    phi, q_raw = ellipticity_to_phi_q(f["e1"], f["e2"])
    q = torch.clamp(q_raw, max=Q_MAX)
    theta_major = f["theta_e_arcsec"] / torch.sqrt((1 + q**2) / (2 * q))
    b = theta_major * torch.sqrt((1 + q**2) / 2)
    sq = torch.sqrt(torch.clamp(1 - q**2, min=0.0))
    small = sq < 1e-3
    r_s, n = f["src_r_sersic_arcsec"], f["src_n_sersic"]
    amp = sersic_unit_flux_amp(r_s, n)
    e1, e2 = f["src_e1"], f["src_e2"]
    norm = torch.sqrt(torch.clamp(torch.abs(1 - e1**2 - e2**2), min=1e-6))
    _, q_src = ellipticity_to_phi_q(e1, e2)
    reach = core_radii * r_s / torch.sqrt(q_src)
    B = len(r_s)
    clumps = torch.zeros((B, max(n_clumps, 1), NCCOL), dtype=torch.float32, device=r_s.device)
    if n_clumps:
        ext = torch.sqrt(f["clump_dx"] ** 2 + f["clump_dy"] ** 2) + 5 * f["clump_sigma"]
        reach = torch.maximum(reach, ext.max(dim=1).values)
        amp = amp * (1 - f["clump_frac"].sum(dim=1))
        s = f["clump_sigma"]
        clumps[..., C_FRAC] = f["clump_frac"].float()
        clumps[..., C_X] = (f["src_x_arcsec"][:, None] + f["clump_dx"]).float()
        clumps[..., C_Y] = (f["src_y_arcsec"][:, None] + f["clump_dy"]).float()
        clumps[..., C_INV2S2] = (1 / (2 * s**2)).float()
        clumps[..., C_NORM] = (f["clump_frac"] / (2 * math.pi * s**2)).float()
    d_min = CUSP_MIN_FRACTION * r_s * torch.sqrt(q_src) * torch.clamp(4.0 / n, min=1.0) ** 2
    cols = [f["center_x_arcsec"], f["center_y_arcsec"], torch.cos(phi), torch.sin(phi), q, b,
            sq, small.to(q.dtype), f["gamma1"], f["gamma2"],
            f["src_x_arcsec"], f["src_y_arcsec"], amp, r_s, 1.0 / n, b_n(n), (1 - e1) / norm, -e2 / norm,
            (1 + e1) / norm, reach**2, d_min, f["theta_e_arcsec"], q_raw]
    assert len(cols) == NCOL
    return torch.stack([c.float() for c in cols], dim=1).contiguous(), clumps.contiguous()



@_jit
def _atan(x):
    """Cephes atanf: |x| > tan(3 pi / 8) -> pi/2 - atan(1/x); > tan(pi / 8) -> pi/4 + atan((x-1)/(x+1))."""
    a = tl.abs(x)
    big = a > 2.414213562373095
    mid = a > 0.4142135623730950
    y0 = tl.where(big, 1.5707963267948966, tl.where(mid, 0.7853981633974483, 0.0))
    xr = tl.where(big, -1.0 / tl.maximum(a, 1e-30), tl.where(mid, (a - 1.0) / (a + 1.0), a))
    z = xr * xr
    r = (((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1) * z * xr + xr
    r = y0 + r
    return tl.where(x < 0, -r, r)


@_jit
def _atanh(z):
    a = tl.abs(z)
    z2 = z * z
    series = z * (1.0 + z2 * (1.0 / 3.0 + z2 * (0.2 + z2 * (1.0 / 7.0 + z2 * (1.0 / 9.0)))))
    return tl.where(a < 0.1, series, 0.5 * tl.log((1.0 + z) / (1.0 - z)))


@_jit
def _ray_shoot(x, y, cx, cy, cos_p, sin_p, q, b, sq, small, g1, g2):
    dx = x - cx
    dy = y - cy
    xr = cos_p * dx + sin_p * dy
    yr = -sin_p * dx + cos_p * dy
    psi = tl.maximum(tl.sqrt(q * q * xr * xr + yr * yr), 1.1754943508222875e-38)
    tx = xr / psi
    ty = tl.minimum(tl.maximum(yr / psi, -1.0), 1.0)
    eps = 1.1920928955078125e-07
    fx_s = tx * (1.0 - (sq * tx) * (sq * tx) / 3.0)
    fy_s = ty * (1.0 + (sq * ty) * (sq * ty) / 3.0)
    sqs = tl.where(small > 0.5, 1.0, sq)
    fx_a = _atan(sqs * tx) / sqs
    fy_a = _atanh(tl.minimum(tl.maximum(sqs * ty, -1.0 + eps), 1.0 - eps)) / sqs
    fx = tl.where(small > 0.5, fx_s, fx_a) * b
    fy = tl.where(small > 0.5, fy_s, fy_a) * b
    ax = cos_p * fx - sin_p * fy
    ay = sin_p * fx + cos_p * fy
    return x - ax - (g1 * x + g2 * y), y - ay - (g2 * x - g1 * y)


@_jit
def _source_sb(bx, by, x, y, tab_row, clump_row, N_CLUMPS: tl.constexpr, SUPPRESS: tl.constexpr):
    sxc = tl.load(tab_row + 10)
    syc = tl.load(tab_row + 11)
    amp = tl.load(tab_row + 12)
    rs = tl.load(tab_row + 13)
    invn = tl.load(tab_row + 14)
    bn = tl.load(tab_row + 15)
    a11 = tl.load(tab_row + 16)
    a12 = tl.load(tab_row + 17)
    a22 = tl.load(tab_row + 18)
    dx = bx - sxc
    dy = by - syc
    xp = a11 * dx + a12 * dy
    yp = a12 * dx + a22 * dy
    r = tl.maximum(tl.sqrt(xp * xp + yp * yp), 1e-4)
    sb = amp * tl.exp(-bn * (tl.exp2(tl.log2(r / rs) * invn) - 1.0))
    for k in tl.static_range(N_CLUMPS):
        cxk = tl.load(clump_row + k * 5 + 1)
        cyk = tl.load(clump_row + k * 5 + 2)
        i2s = tl.load(clump_row + k * 5 + 3)
        nrm = tl.load(clump_row + k * 5 + 4)
        ddx = bx - cxk
        ddy = by - cyk
        sb += nrm * tl.exp(-(ddx * ddx + ddy * ddy) * i2s)
    if SUPPRESS:
        cx = tl.load(tab_row + 0)
        cy = tl.load(tab_row + 1)
        cos_p = tl.load(tab_row + 2)
        sin_p = tl.load(tab_row + 3)
        te = tl.load(tab_row + 21)
        qs = tl.load(tab_row + 22)
        lx = x - cx
        ly = y - cy
        xr = cos_p * lx + sin_p * ly
        yr = -sin_p * lx + cos_p * ly
        sb = tl.where(tl.sqrt(qs * xr * xr + yr * yr / qs) < te, 0.0, sb)
    return sb


@_jit
def _centre_kernel(tab_ptr, bx_ptr, by_ptr, N, c, pixscale, NCOL_: tl.constexpr, BLOCK_: tl.constexpr):
    s = tl.program_id(1)
    o = tl.program_id(0) * BLOCK_ + tl.arange(0, BLOCK_)
    m = o < N * N
    row = o // N
    col = o % N
    x = (col.to(tl.float32) - c) * pixscale
    y = (row.to(tl.float32) - c) * pixscale
    t = tab_ptr + s * NCOL_
    bx, by = _ray_shoot(x, y, tl.load(t + 0), tl.load(t + 1), tl.load(t + 2), tl.load(t + 3), tl.load(t + 4),
                        tl.load(t + 5), tl.load(t + 6), tl.load(t + 7), tl.load(t + 8), tl.load(t + 9))
    tl.store(bx_ptr + s * N * N + o, bx, mask=m)
    tl.store(by_ptr + s * N * N + o, by, mask=m)


@_jit
def _pixel_kernel(tab_ptr, clump_ptr, bx_ptr, by_ptr, img_ptr, stretch_ptr, N, c, pixscale, area, cusp_near,
                  IMG_B, IMG_R, NCOL_: tl.constexpr, SS: tl.constexpr, N_CLUMPS: tl.constexpr, NC_ALLOC: tl.constexpr,
                  SUPPRESS: tl.constexpr, BLOCK_: tl.constexpr, TILE_W: tl.constexpr):
    """Each pixel's unit-flux value (times ``area``) into img[s, row, col] at img_ptr + s IMG_B + row IMG_R
    + col (a (B, N, N) view, e.g. the top-left window of a zero-padded transform buffer), and the
    stretch of pixels flagged for the cusp refinement (0 elsewhere) into a contiguous (B, N, N).
    A program covers a tile TILE_W pixels wide and BLOCK_ / TILE_W tall (``pixel_grid``), or with
    TILE_W = 0 BLOCK_ consecutive pixels in row order; each pixel's arithmetic is the same either way."""
    s = tl.program_id(1)
    if TILE_W > 0:
        tiles_x = (N + TILE_W - 1) // TILE_W
        tr = tl.program_id(0) // tiles_x
        i = tl.arange(0, BLOCK_)
        row = tr * (BLOCK_ // TILE_W) + i // TILE_W
        col = (tl.program_id(0) - tr * tiles_x) * TILE_W + i % TILE_W
        m = (row < N) & (col < N)
        o = row * N + col
    else:
        o = tl.program_id(0) * BLOCK_ + tl.arange(0, BLOCK_)
        m = o < N * N
        row = o // N
        col = o % N
    colf = col.to(tl.float32) - c
    rowf = row.to(tl.float32) - c
    x = colf * pixscale
    y = rowf * pixscale
    t = tab_ptr + s * NCOL_
    cr = clump_ptr + s * NC_ALLOC * 5
    base = s * N * N
    bx = tl.load(bx_ptr + base + o, mask=m, other=0.0)
    by = tl.load(by_ptr + base + o, mask=m, other=0.0)
    sb = _source_sb(bx, by, x, y, t, cr, N_CLUMPS, SUPPRESS)
    # source-plane box of the 3x3 neighbours' ray-shot centres (outside ignored)
    bx0 = bx
    bx1 = bx
    by0 = by
    by1 = by
    for di in tl.static_range(3):
        for dj in tl.static_range(3):
            rr = row + (di - 1)
            cc = col + (dj - 1)
            ok = m & (rr >= 0) & (rr < N) & (cc >= 0) & (cc < N)
            nb = base + rr * N + cc
            vx = tl.load(bx_ptr + nb, mask=ok, other=0.0)
            vy = tl.load(by_ptr + nb, mask=ok, other=0.0)
            bx0 = tl.where(ok, tl.minimum(bx0, vx), bx0)
            bx1 = tl.where(ok, tl.maximum(bx1, vx), bx1)
            by0 = tl.where(ok, tl.minimum(by0, vy), by0)
            by1 = tl.where(ok, tl.maximum(by1, vy), by1)
    sxc = tl.load(t + 10)
    syc = tl.load(t + 11)
    gx = tl.maximum(bx0 - sxc, 0.0) + tl.maximum(sxc - bx1, 0.0)
    gy = tl.maximum(by0 - syc, 0.0) + tl.maximum(syc - by1, 0.0)
    cx = tl.load(t + 0)
    cy = tl.load(t + 1)
    lim = 1.5 * pixscale
    need = ((gx * gx + gy * gy) < tl.load(t + 19)) | (((x - cx) * (x - cx) + (y - cy) * (y - cy)) < lim * lim)
    need = need & m
    stretch = tl.maximum(bx1 - bx0, by1 - by0) / (2.0 * pixscale)
    value = sb
    flag = tl.zeros([BLOCK_], dtype=tl.int32)
    if tl.max(need.to(tl.int32), axis=0) > 0:
        cos_p = tl.load(t + 2)
        sin_p = tl.load(t + 3)
        q = tl.load(t + 4)
        b = tl.load(t + 5)
        sq = tl.load(t + 6)
        small = tl.load(t + 7)
        g1 = tl.load(t + 8)
        g2 = tl.load(t + 9)
        dmin = tl.load(t + 20)
        d = (pixscale / SS) * stretch
        refinable = d > dmin
        acc = tl.zeros([BLOCK_], dtype=tl.float32)
        for jy in tl.range(SS):
            sy = (rowf + ((jy + 0.5) / SS - 0.5)) * pixscale
            for jx in tl.range(SS):
                sx = (colf + ((jx + 0.5) / SS - 0.5)) * pixscale
                sbx, sby = _ray_shoot(sx, sy, cx, cy, cos_p, sin_p, q, b, sq, small, g1, g2)
                acc += _source_sb(sbx, sby, sx, sy, t, cr, N_CLUMPS, SUPPRESS)
                gxx = sbx - sxc
                gyy = sby - syc
                g = tl.sqrt(gxx * gxx + gyy * gyy)
                flag = flag | ((g < cusp_near * d) & refinable).to(tl.int32)
        value = tl.where(need, acc / (SS * SS), sb)
        flag = flag & need.to(tl.int32)
    tl.store(img_ptr + s.to(tl.int64) * IMG_B + row * IMG_R + col, value * area, mask=m)
    tl.store(stretch_ptr + base + o, tl.where(flag > 0, stretch, 0.0), mask=m)


@_jit
def _cell_value(x, y, s, d, tab_ptr, clump_ptr, cusp_near, NCOL_: tl.constexpr, N_CLUMPS: tl.constexpr,
                NC_ALLOC: tl.constexpr, SUPPRESS: tl.constexpr):
    """(sb, refine) of cells of side d [arcsec, source plane] at image-plane (x, y) of stamps s: the
    unit-flux surface brightness at the ray-shot centre, and whether the cell is refined further (the
    ray-shot centre within cusp_near x d of the source centre, and d above the stamp's d_min)."""
    t = tab_ptr + s * NCOL_
    cr = clump_ptr + s * NC_ALLOC * 5
    bx, by = _ray_shoot(x, y, tl.load(t + 0), tl.load(t + 1), tl.load(t + 2), tl.load(t + 3), tl.load(t + 4),
                        tl.load(t + 5), tl.load(t + 6), tl.load(t + 7), tl.load(t + 8), tl.load(t + 9))
    sb = _source_sb(bx, by, x, y, t, cr, N_CLUMPS, SUPPRESS)
    gx = bx - tl.load(t + 10)
    gy = by - tl.load(t + 11)
    return sb, (tl.sqrt(gx * gx + gy * gy) < cusp_near * d) & (d > tl.load(t + 20))


# the cell count n varies from call to call: not specialised on (n % 16 == 0, n == 1), so that a call
# never waits for a compilation a previous call with another n did not need (~1 s each on a GPU)
@triton.jit(do_not_specialize=["n"])
def _cell_kernel(tab_ptr, clump_ptr, x_ptr, y_ptr, sidx_ptr, d_ptr, sb_ptr, ref_ptr, n, cusp_near,
                 NCOL_: tl.constexpr, N_CLUMPS: tl.constexpr, NC_ALLOC: tl.constexpr, SUPPRESS: tl.constexpr,
                 BLOCK_: tl.constexpr):
    """Unit-flux surface brightness at image-plane cell centres (x, y) of stamps sidx, and whether
    each cell is refined further (its ray-shot centre within cusp_near x d of the source centre,
    and d above the stamp's d_min): one level of ``render._cusp_average``."""
    o = tl.program_id(0) * BLOCK_ + tl.arange(0, BLOCK_)
    m = o < n
    x = tl.load(x_ptr + o, mask=m, other=0.0)
    y = tl.load(y_ptr + o, mask=m, other=0.0)
    s = tl.load(sidx_ptr + o, mask=m, other=0)
    d = tl.load(d_ptr + o, mask=m, other=0.0)
    sb, ref = _cell_value(x, y, s, d, tab_ptr, clump_ptr, cusp_near, NCOL_, N_CLUMPS, NC_ALLOC, SUPPRESS)
    tl.store(sb_ptr + o, sb, mask=m)
    tl.store(ref_ptr + o, ref.to(tl.int8), mask=m)


@triton.jit(do_not_specialize=["n", "allow"])  # as _cell_kernel
def _child_kernel(tab_ptr, clump_ptr, pcx_ptr, pcy_ptr, pown_ptr, idx_ptr, bidx_ptr, st_ptr, dxh_ptr, dyh_ptr,
                  cx_ptr, cy_ptr, own_ptr, contrib_ptr, ref_ptr, n, hh, w, cusp_near, allow, KK: tl.constexpr,
                  USE_IDX: tl.constexpr, NCOL_: tl.constexpr, N_CLUMPS: tl.constexpr,
                  NC_ALLOC: tl.constexpr, SUPPRESS: tl.constexpr, BLOCK_: tl.constexpr):
    """One level of ``render._cusp_average`` from its parents in one launch: child o of parent j = o // KK
    (parent cell idx[j] of the previous level, or j) has centre (pcx, pcy)[parent] + (dxh, dyh)[o % KK]
    (the offsets times the parent's side, computed by the caller as the reference does), the parent's
    owner (a flagged sub-pixel: its stamp bidx and stretch st), side hh and weight w; written: the
    centre, the owner, the contribution w x sb (0 where refined further: its children carry it) and
    whether it is refined (never where ``allow`` is 0), as ``_cell_kernel`` decides."""
    o = tl.program_id(0) * BLOCK_ + tl.arange(0, BLOCK_)
    m = o < n
    j = o // KK
    t = o - j * KK
    if USE_IDX:
        par = tl.load(idx_ptr + j, mask=m, other=0)
    else:
        par = j
    x = tl.load(pcx_ptr + par, mask=m, other=0.0) + tl.load(dxh_ptr + t, mask=m, other=0.0)
    y = tl.load(pcy_ptr + par, mask=m, other=0.0) + tl.load(dyh_ptr + t, mask=m, other=0.0)
    ow = tl.load(pown_ptr + par, mask=m, other=0)
    s = tl.load(bidx_ptr + ow, mask=m, other=0)
    d = hh * tl.load(st_ptr + ow, mask=m, other=0.0)
    sb, ref = _cell_value(x, y, s, d, tab_ptr, clump_ptr, cusp_near, NCOL_, N_CLUMPS, NC_ALLOC, SUPPRESS)
    ref = ref & (allow != 0)
    tl.store(cx_ptr + o, x, mask=m)
    tl.store(cy_ptr + o, y, mask=m)
    tl.store(own_ptr + o, ow, mask=m)
    tl.store(contrib_ptr + o, tl.where(ref, 0.0, w * sb), mask=m)
    tl.store(ref_ptr + o, ref.to(tl.int8), mask=m)


def _children(tab, clumps, parents, idx, bidx, st, dxh, dyh, hh: float, w: float, n_clumps: int, suppress_inner: bool,
              no_refine: bool = False):
    """(cx, cy, owner, contrib, refine) of the children of the cells ``parents`` = (cx, cy, owner)
    selected by ``idx`` (int64 indices, or None for all): ``_child_kernel``."""
    pcx, pcy, pown = parents
    kk = dxh.numel()
    n = (pcx.numel() if idx is None else idx.numel()) * kk
    dev = pcx.device
    cx, cy = torch.empty(n, dtype=torch.float32, device=dev), torch.empty(n, dtype=torch.float32, device=dev)
    own = torch.empty(n, dtype=torch.int64, device=dev)
    contrib = torch.empty(n, dtype=torch.float32, device=dev)
    ref = torch.empty(n, dtype=torch.int8, device=dev)
    if n:
        _child_kernel[(triton.cdiv(n, 1024),)](tab, clumps, pcx, pcy, pown, pown if idx is None else idx, bidx, st,
                                                dxh, dyh, cx, cy, own, contrib, ref, n, hh, w, CUSP_NEAR,
                                                int(not no_refine), kk, idx is not None, NCOL, n_clumps, clumps.shape[1],
                                                bool(suppress_inner), 1024)
    return cx, cy, own, contrib, ref.bool()


def _cells(tab, clumps, x, y, sidx, d, n_clumps: int, suppress_inner: bool):
    """(sb, refine) of cells: ``_cell_kernel`` over flat float32 x, y, d and int64 stamp indices."""
    n = x.numel()
    sb = torch.empty(n, dtype=torch.float32, device=x.device)
    ref = torch.empty(n, dtype=torch.int8, device=x.device)
    if n:
        _cell_kernel[(triton.cdiv(n, 1024),)](tab, clumps, x.contiguous(), y.contiguous(), sidx.contiguous(),
                                               d.contiguous(), sb, ref, n, CUSP_NEAR, NCOL, n_clumps,
                                               clumps.shape[1], bool(suppress_inner), 1024)
    return sb, ref.bool()


def _cusp_pixels(tab, clumps, b_i, r_i, c_i, stretch, npix: int, supersample: int, pixscale: float, n_clumps: int,
                 suppress_inner: bool) -> torch.Tensor:
    """``render._supersampled_pixels`` with every ray shot and source evaluation in
    ``_cell_kernel``; the cells, their order, weights and stopping rules are the reference's
    (``render._cusp_average``), so the decisions agree up to float32 rounding."""
    dev = b_i.device
    c = (npix - 1) / 2
    off = (torch.arange(supersample, dtype=torch.float32, device=dev) + 0.5) / supersample - 0.5
    M = len(b_i)
    sx = (((c_i.float() - c)[:, None, None] + off[None, None, :]) * pixscale).expand(M, supersample, supersample)
    sy = (((r_i.float() - c)[:, None, None] + off[None, :, None]) * pixscale).expand(M, supersample, supersample)
    h = pixscale / supersample
    per = supersample * supersample
    sb, ref = _cells(tab, clumps, sx.reshape(-1), sy.reshape(-1), b_i.repeat_interleave(per),
                     (h * stretch).repeat_interleave(per), n_clumps, suppress_inner)
    sb = sb.view(M, supersample, supersample)
    ref = ref.view(M, supersample, supersample)
    m, j1, j2 = ref.nonzero(as_tuple=True)
    if len(m):
        # recursive refinement of the flagged sub-pixels, level by level (render._cusp_average); each
        # level's children made, evaluated and decided in one ``_child_kernel`` launch
        parents = (sx[m, 0, j2].contiguous(), sy[m, j1, 0].contiguous(), torch.arange(len(m), device=dev))
        st, bidx = stretch[m].contiguous(), b_i[m].contiguous()
        acc = torch.zeros(len(m), dtype=torch.float32, device=dev)
        k = CUSP_SPLIT
        o = (torch.arange(k, dtype=torch.float32, device=dev) + 0.5) / k - 0.5
        dx, dy = o.repeat(k), o.repeat_interleave(k)
        hh, w, idx = h, 1.0, None
        tree, levels = use_subtree_sums(acc), []
        for level in range(CUSP_LEVELS):
            dxh, dyh = dx * hh, dy * hh  # the children's offsets, as the reference computes them
            hh, w = hh / k, w / k**2
            last = level == CUSP_LEVELS - 1
            kids = _children(tab, clumps, parents, idx, bidx, st, dxh, dyh, hh, w, n_clumps, suppress_inner, last)
            nxt = kids[4].nonzero().squeeze(1)  # the level's one host synchronisation (its size)
            if len(nxt) * k * k > CUSP_MAX_CELLS:  # stop here: every cell counts (rare; evaluated again)
                kids = _children(tab, clumps, parents, idx, bidx, st, dxh, dyh, hh, w, n_clumps, suppress_inner, True)
                nxt = nxt[:0]
            cx, cy, owner, contrib, refine = kids
            if tree:  # the refined cells' entries are 0: their children carry their values
                levels.append((contrib, nxt))
            else:
                acc.index_add_(0, owner[~refine], contrib[~refine])
            if not len(nxt):
                break
            parents, idx = (cx, cy, owner), nxt
        if tree:
            acc = subtree_sums(levels, k * k)
        sb = sb.index_put((m, j1, j2), acc)
    return sb.mean(dim=(1, 2))


def render_unit_lensed_fused(p: dict, npix: int, supersample: int, pixscale: float, suppress_inner: bool = False,
                             n_clumps: int = 0, core_radii: float = 5.0, torch_cusp=None,
                             out: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N, N) lensed unit-flux image (no PSF), the fused equivalent of
    ``render_unit_lensed_adaptive`` (float32).  ``torch_cusp``: ``render._supersampled_pixels``,
    used for the flagged pixels when ``CUSP_IN_TRITON`` is False (passed in: this module does
    not import ``render``).  ``out``: a float32 (B, N, N) view with unit column stride to write
    into (e.g. the top-left window of the PSF transform's zero-padded buffer), returned."""
    t = p["theta_e_arcsec"]
    B, dev = t.shape[0], t.device
    if dev.type != "cuda" and type(_pixel_kernel).__name__ != "InterpretedFunction":
        raise ValueError("the fused renderer needs a CUDA device (on the CPU: Triton's interpreter, "
                         "TRITON_INTERPRET=1 set before triton is first imported)")
    tab, clumps = stamp_table(p, n_clumps, core_radii)
    bx = torch.empty((B, npix, npix), dtype=torch.float32, device=dev)
    by = torch.empty_like(bx)
    img = torch.empty_like(bx) if out is None else out
    if img.shape != bx.shape or img.dtype != torch.float32 or img.stride(2) != 1:
        raise ValueError(f"out must be a float32 {tuple(bx.shape)} view with unit column stride")
    stretch = torch.empty_like(bx)
    c = (npix - 1) / 2
    _centre_kernel[(triton.cdiv(npix * npix, BLOCK), B)](tab, bx, by, npix, c, pixscale, NCOL, BLOCK)
    _pixel_kernel[pixel_grid(npix, B)](tab, clumps, bx, by, img, stretch, npix, c, pixscale, pixscale**2, CUSP_NEAR,
                                       img.stride(0), img.stride(1), NCOL, supersample, n_clumps, clumps.shape[1],
                                       bool(suppress_inner), PIXEL_BLOCK, max(PIXEL_TILE_W, 0),
                                       num_warps=max(1, PIXEL_BLOCK // 64))
    b_i, r_i, c_i = stretch.nonzero(as_tuple=True)
    if len(b_i):
        if CUSP_IN_TRITON or torch_cusp is None:
            sub = _cusp_pixels(tab, clumps, b_i, r_i, c_i, stretch[b_i, r_i, c_i], npix, supersample, pixscale,
                               n_clumps, suppress_inner)
        else:
            p32 = {k: v.float() for k, v in p.items()}
            sub = torch_cusp(p32, b_i, r_i, c_i, stretch[b_i, r_i, c_i], npix, supersample, pixscale,
                                       n_clumps, suppress_inner, FIXUP_COMPILED and dev.type == "cuda")
        img.index_put_((b_i, r_i, c_i), sub * pixscale**2)
    return img


@_jit
def _unit_sum_spectrum(half_ptr, row, uh, v, nh, m, msk):
    """The kernel spectrum normalised to unit sum, half[row, uh, v] / half[row, 0, 0] (IEEE division, as
    torch's), of a (rows, nh, m) float32 ``psf.moffat_half_spectra`` block, row = stamp x C + band."""
    return tl.div_rn(tl.load(half_ptr + (row * nh + uh) * m + v, mask=msk, other=0.0), tl.load(half_ptr + row * nh * m))


@_jit
def _spectral_product_kernel(fi_ptr, half_ptr, flux_ptr, out_ptr, n, m, nh, C: tl.constexpr, BLOCK_: tl.constexpr):
    """out[b, c, u, v] = (fi[b, u, v] x (half[b, c, min(u, n - u), v] / half[b, c, 0, 0])) x flux[b, c]:
    complex fi and out as (re, im) float32 pairs, (B, n, m) and (B, C, n, m); half (B, C, nh, m) real
    float32, normalised here (IEEE division, as torch's)."""
    b = tl.program_id(1).to(tl.int64)
    o = tl.program_id(0) * BLOCK_ + tl.arange(0, BLOCK_)
    msk = o < n * m
    u = o // m
    v = o - u * m
    uh = tl.where(u <= n // 2, u, n - u)
    two = tl.arange(0, 2)
    m2 = msk[:, None] & (two[None, :] < 2)
    z = tl.load(fi_ptr + (b * n * m + o)[:, None] * 2 + two[None, :], mask=m2, other=0.0)
    for c in tl.static_range(C):
        k = _unit_sum_spectrum(half_ptr, b * C + c, uh, v, nh, m, msk)
        f = tl.load(flux_ptr + b * C + c)
        tl.store(out_ptr + ((b * C + c) * n * m + o)[:, None] * 2 + two[None, :], (z * k[:, None]) * f, mask=m2)


def spectral_product(fi: torch.Tensor, half: torch.Tensor, flux: torch.Tensor) -> torch.Tensor:
    """(B, C, n, m) complex64 spectra of the C bands: the unit image's ``rfft2`` fi (B, n, m) complex64
    times each band's real kernel spectrum, given for rows u <= n // 2 and not yet normalised as
    ``half`` (B, C, n // 2 + 1, m) float32 (``psf.moffat_half_spectra``; row n - u equals row u), times
    ``flux`` (B, C): in one pass, the float32 operations of ``fi[:, None] * psf.moffat_spectra(...) *
    flux`` (normalisation, then torch's complex-by-real products), without writing the normalised and
    mirrored spectra and the two products."""
    B, n, m = fi.shape
    C, nh = half.shape[1], half.shape[2]
    if half.shape != (B, C, n // 2 + 1, m) or flux.shape != (B, C):
        raise ValueError(f"half {tuple(half.shape)} / flux {tuple(flux.shape)} do not match fi {tuple(fi.shape)}")
    out = torch.empty((B, C, n, m), dtype=torch.complex64, device=fi.device)
    if B:
        _spectral_product_kernel[(triton.cdiv(n * m, 1024), B)](
            torch.view_as_real(fi.contiguous()), half.float().contiguous(), flux.float().contiguous(),
            torch.view_as_real(out), n, m, nh, C, 1024)
    return out


@_jit
def _pair_product_kernel(fi_ptr, half_ptr, flux_ptr, out_ptr, B, n, m, nh, C: tl.constexpr, BLOCK_: tl.constexpr):
    """out[p, c, u, v] = X[2p, c, u, v] + i X[2p + 1, c, u, v] over the whole (n, n) plane, where X[s, c] is
    ``_spectral_product_kernel``'s product for stamp s (zero for s = B) extended to the columns v > n / 2 by
    Hermitian symmetry (X(u, v) = conj X((n - u) mod n, n - v); the kernel spectrum is even in u and v):
    the inverse c2c transform of out is then image 2p in its real part and image 2p + 1 in its imaginary part."""
    p = tl.program_id(1).to(tl.int64)
    o = tl.program_id(0) * BLOCK_ + tl.arange(0, BLOCK_)
    msk = o < n * n
    u = o // n
    v = o - u * n
    lower = v < m
    us = tl.where(lower, u, (n - u) % n)
    vs = tl.where(lower, v, n - v)  # also the kernel spectrum's column (it is even in v)
    uh = tl.where(u <= n // 2, u, n - u)
    sgn = tl.where(lower, 1.0, -1.0)  # the conjugate's sign on the imaginary part
    col = tl.arange(0, 2)[None, :]
    m2 = msk[:, None] & (col < 2)
    a = 2 * p
    b = tl.minimum(a + 1, B - 1)  # the last stamp twice in an odd batch, its second copy weighted 0 (fb)
    has_b = a + 1 < B
    za = tl.load(fi_ptr + ((a * n + us) * m + vs)[:, None] * 2 + col, mask=m2, other=0.0)
    za = za * tl.where(col == 1, sgn[:, None], 1.0)
    # stamp b's (im, re), signed so that adding its products gives (re_a - im_b, im_a + re_b)
    zb = tl.load(fi_ptr + ((b * n + us) * m + vs)[:, None] * 2 + (1 - col), mask=m2 & has_b, other=0.0)
    zb = zb * tl.where(col == 0, -sgn[:, None], 1.0)
    for c in tl.static_range(C):
        ka = _unit_sum_spectrum(half_ptr, a * C + c, uh, vs, nh, m, msk)
        kb = _unit_sum_spectrum(half_ptr, b * C + c, uh, vs, nh, m, msk)
        fa = tl.load(flux_ptr + a * C + c)
        fb = tl.load(flux_ptr + b * C + c, mask=has_b, other=0.0)
        tl.store(out_ptr + ((p * C + c) * n * n + o)[:, None] * 2 + col,
                 (za * ka[:, None]) * fa + (zb * kb[:, None]) * fb, mask=m2)


def spectral_product_pairs(fi: torch.Tensor, half: torch.Tensor, flux: torch.Tensor) -> torch.Tensor:
    """(ceil(B / 2), C, n, n) complex64: ``spectral_product``'s spectra of stamps 2p and 2p + 1 over the whole
    plane, packed as X_2p + i X_2p+1 (a missing last stamp is zero), so that one complex inverse transform
    (``torch.fft.ifft2``) gives both real images, image 2p as the real part and 2p + 1 as the imaginary
    part (``unpack_pairs``): no c2r transform, whose input torch must first copy.  Arguments as
    ``spectral_product``."""
    B, n, m = fi.shape
    C, nh = half.shape[1], half.shape[2]
    if half.shape != (B, C, n // 2 + 1, m) or flux.shape != (B, C) or m != n // 2 + 1:
        raise ValueError(f"half {tuple(half.shape)} / flux {tuple(flux.shape)} do not match fi {tuple(fi.shape)}")
    P = (B + 1) // 2
    out = torch.empty((P, C, n, n), dtype=torch.complex64, device=fi.device)
    if B:
        _pair_product_kernel[(triton.cdiv(n * n, 1024), P)](
            torch.view_as_real(fi.contiguous()), half.float().contiguous(), flux.float().contiguous(),
            torch.view_as_real(out), B, n, m, nh, C, 1024)
    return out


def unpack_pairs(images: torch.Tensor, lo: int, dest: torch.Tensor) -> None:
    """``dest`` (b, C, N, N) <- the windows [lo, lo + N)^2 of the packed pairs' inverse transforms ``images``
    (ceil(b / 2), C, n, n) complex: stamp 2p the real part of pair p, stamp 2p + 1 its imaginary part."""
    b, N = dest.shape[0], dest.shape[-1]
    win = torch.view_as_real(images)[:, :, lo:lo + N, lo:lo + N, :].permute(0, 4, 1, 2, 3)  # (P, 2, C, N, N)
    if b % 2 == 0 and dest.is_contiguous():
        dest.view(b // 2, 2, *dest.shape[1:]).copy_(win)
    else:
        dest.copy_(win.reshape(-1, *dest.shape[1:])[:b])
