"""Batched rendering of lensed arcs on zero hosts (nmgy per pixel), torch.

For each injection: ray-shoot a supersampled grid (x ss) through SIE + shear, evaluate
the unit-flux source there (surface brightness is conserved: the lensed flux is
magnification x source flux, never imposed), average the sub-pixels (sub-pixels that
see a cuspy Sersic core are refined further: ``_cusp_average``, so an n = 4, R_e = 0.05"
source keeps its total flux within 1 %), multiply by the
pixel area and by the source flux per band (AB mag -> nmgy), convolve with the per-band
Moffat PSF, or with given pixelised kernels (``render_arcs(psf_kernels=...)``, e.g. PSFEx
models), ('same', zero padding).  magnification = lensed flux inside the stamp before
the PSF / unlensed total flux.  ``suppress_inner`` zeroes the lensed light inside the
lens's elliptical Einstein radius (product-averaged), i.e. the counter-image region.
Stamp coordinates: arcsec from pixel ((N-1)/2, (N-1)/2), x along +columns, y along +rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lensaudit.device_upload import columns_to_device
from lensaudit.injection.cusp import (CUSP_LEVELS, CUSP_MAX_CELLS, CUSP_MIN_FRACTION, CUSP_NEAR,  # noqa: F401
                                      CUSP_SPLIT, subtree_sums, use_subtree_sums)
from lensaudit.injection.lens import ellipticity_to_phi_q, shear_deflection, sie_deflection
from lensaudit.injection.psf import convolve_same, kernel_half_width, moffat_kernels
from lensaudit.injection.source import source_unit_sb
from lensaudit.survey.instrument import AB_ZEROPOINT_NMGY, BANDS, PIXSCALE_ARCSEC, STAMP_PIX



@dataclass
class RenderResult:
    images: torch.Tensor          # (B, 3, N, N) nmgy per pixel, PSF-convolved
    magnification: torch.Tensor   # (B,)
    unit_lensed: torch.Tensor     # (B, N, N) lensed unit-flux image before the PSF


def mag_to_nmgy(mag):
    """Flux [nmgy] of AB magnitudes (tensors or arrays)."""
    return 10.0 ** (-0.4 * (mag - AB_ZEROPOINT_NMGY))


def subpixel_axis(npix: int, supersample: int, pixscale: float, dtype, device) -> torch.Tensor:
    c = (npix - 1) / 2
    j = torch.arange(npix * supersample, dtype=dtype, device=device)
    return ((j // supersample) - c + ((j % supersample) + 0.5) / supersample - 0.5) * pixscale


def _host_scalars(cols: dict, dtype) -> tuple[int, float | None]:
    """(supersample, largest Moffat FWHM [arcsec] or None) of ``cols`` as the device tensors
    would give them (cast to ``dtype`` on the host): no read back from the device."""
    def host(keys):
        return torch.as_tensor(np.stack([np.asarray(cols[k], dtype=np.float64) for k in keys]), dtype=dtype)
    supersample = int(host(["supersample"])[0, 0]) if "supersample" in cols else 4
    keys = [f"psf_fwhm_{b}_arcsec" for b in BANDS]
    fwhm_max = float(host(keys).max()) if all(k in cols for k in keys) else None
    return supersample, fwhm_max


def _source_params(col: dict, n_clumps: int, clump_shape) -> dict:
    src = {"src_x": col["src_x_arcsec"], "src_y": col["src_y_arcsec"], "r_sersic": col["src_r_sersic_arcsec"],
           "n_sersic": col["src_n_sersic"], "src_e1": col["src_e1"], "src_e2": col["src_e2"]}
    if n_clumps:
        for k in ("clump_dx", "clump_dy", "clump_sigma", "clump_frac"):
            src[k] = clump_shape(col[k])
    return src


def _ray_shoot(x, y, col):
    ax, ay = sie_deflection(x, y, col["theta_e_arcsec"], col["e1"], col["e2"], col["center_x_arcsec"], col["center_y_arcsec"])
    sx, sy = shear_deflection(x, y, col["gamma1"], col["gamma2"])
    return x - ax - sx, y - ay - sy


def _source_sb(bx, by, x, y, col: dict, n_clumps: int, clump_shape, suppress_inner: bool):
    """Unit-flux source surface brightness at source-plane (bx, by) seen from image-plane
    (x, y) (needed for ``suppress_inner``); ``col`` broadcasts against the coordinates."""
    sb = source_unit_sb(bx, by, _source_params(col, n_clumps, clump_shape), n_clumps)
    if suppress_inner:
        phi, q = ellipticity_to_phi_q(col["e1"], col["e2"])
        dx, dy = x - col["center_x_arcsec"], y - col["center_y_arcsec"]
        xr = torch.cos(phi) * dx + torch.sin(phi) * dy
        yr = -torch.sin(phi) * dx + torch.cos(phi) * dy
        sb = torch.where(torch.sqrt(q * xr**2 + yr**2 / q) < col["theta_e_arcsec"], torch.zeros_like(sb), sb)
    return sb


def _clump4(v):
    return v[:, :, None, None]


def _lensed_sb(x, y, col: dict, n_clumps: int, clump_shape, suppress_inner: bool):
    bx, by = _ray_shoot(x, y, col)
    return _source_sb(bx, by, x, y, col, n_clumps, clump_shape, suppress_inner)


def render_unit_lensed(p: dict, npix: int, supersample: int, pixscale: float, suppress_inner: bool = False,
                       n_clumps: int = 0) -> torch.Tensor:
    """(B, N, N) lensed image of a unit-flux source (nmgy per pixel), no PSF, with every
    pixel supersampled (the reference path)."""
    t = p["theta_e_arcsec"]
    ax1 = subpixel_axis(npix, supersample, pixscale, t.dtype, t.device)
    col = {k: (v[:, None, None] if v.ndim == 1 else v) for k, v in p.items()}
    sb = _lensed_sb(ax1[None, None, :], ax1[None, :, None], col, n_clumps, lambda v: v[:, :, None, None], suppress_inner)
    B = sb.shape[0]
    return sb.reshape(B, npix, supersample, npix, supersample).mean(dim=(2, 4)) * pixscale**2


_COMPILED: dict = {}


def _kernel(fn, compiled: bool):
    """``fn`` itself, or its torch.compile'd version (fused elementwise kernels; worth it
    on a GPU, not on the CPU)."""
    if not compiled:
        return fn
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=True)
    return _COMPILED[fn]


def _max3(a):
    """3x3 running maximum of (B, H, W) with the outside ignored (max_pool2d, stride 1, padding
    1), separably: two passes of three shifted views (fused into one kernel when compiled)."""
    p = F.pad(a, (1, 1, 1, 1), value=float("-inf"))
    r = torch.maximum(torch.maximum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])
    return torch.maximum(torch.maximum(r[:, :-2], r[:, 1:-1]), r[:, 2:])


def _box3(a):
    """(min, max) over each pixel's 3x3 neighbourhood."""
    return -_max3(-a), _max3(a)


def render_unit_lensed_adaptive(p: dict, npix: int, supersample: int, pixscale: float, suppress_inner: bool = False,
                                n_clumps: int = 0, core_radii: float = 5.0, compiled: bool = False) -> torch.Tensor:
    """As :func:`render_unit_lensed`, supersampling only the pixels that need it.

    A pixel is supersampled when the source-plane box spanned by the ray-shot centres
    of its 3x3 neighbourhood comes within ``core_radii`` x R_sersic / sqrt(q_src) (+ clump extents) of
    the source centre, or when it lies within 1.5 pixels of the lens centre (where the
    deflection field is singular); elsewhere the surface brightness varies little
    inside a pixel and its centre value is used.  The parity tests hold this path to
    1 % of lenstronomy's fully supersampled image.
    """
    t = p["theta_e_arcsec"]
    dtype, dev = t.dtype, t.device
    c = (npix - 1) / 2
    col = {k: (v[:, None, None] if v.ndim == 1 else v) for k, v in p.items()}
    ax1 = (torch.arange(npix, dtype=dtype, device=dev) - c) * pixscale
    x, y = ax1[None, None, :], ax1[None, :, None]
    bx, by = _kernel(_ray_shoot, compiled)(x, y, col)
    image = _kernel(_source_sb, compiled)(bx, by, x, y, col, n_clumps, _clump4, suppress_inner)
    # source-plane footprint of each pixel: the box spanned by its own and its eight
    # neighbours' ray-shot centres (which enclose the pixel's corners)
    (bx0, bx1), (by0, by1) = _kernel(_box3, compiled)(bx), _kernel(_box3, compiled)(by)
    _, q_src = ellipticity_to_phi_q(col["src_e1"], col["src_e2"])
    reach = core_radii * col["src_r_sersic_arcsec"] / torch.sqrt(q_src)
    if n_clumps:
        ext = torch.sqrt(p["clump_dx"] ** 2 + p["clump_dy"] ** 2) + 5 * p["clump_sigma"]
        reach = torch.maximum(reach, ext.max(dim=1).values[:, None, None])
    gx = torch.clamp(bx0 - col["src_x_arcsec"], min=0) + torch.clamp(col["src_x_arcsec"] - bx1, min=0)
    gy = torch.clamp(by0 - col["src_y_arcsec"], min=0) + torch.clamp(col["src_y_arcsec"] - by1, min=0)
    need = gx**2 + gy**2 < reach**2
    near_lens = ((ax1[None, None, :] - col["center_x_arcsec"]) ** 2 + (ax1[None, :, None] - col["center_y_arcsec"]) ** 2
                 < (1.5 * pixscale) ** 2)
    need = need | near_lens
    b_i, r_i, c_i = need.nonzero(as_tuple=True)
    if len(b_i):
        stretch = (torch.maximum(bx1 - bx0, by1 - by0) / (2 * pixscale))[b_i, r_i, c_i]
        image = image.index_put((b_i, r_i, c_i), _supersampled_pixels(p, b_i, r_i, c_i, stretch, npix, supersample,
                                                                      pixscale, n_clumps, suppress_inner, compiled))
    return image * pixscale**2


def _supersampled_pixels(p: dict, b_i, r_i, c_i, stretch, npix: int, supersample: int, pixscale: float,
                         n_clumps: int, suppress_inner: bool, compiled: bool = False) -> torch.Tensor:
    """Mean unit-flux surface brightness of pixels (b_i, r_i, c_i) over their ss x ss
    sub-pixels, sub-pixels near a cuspy core refined (``_cusp_average``); ``stretch``: each
    pixel's source/image length ratio (half the larger side of its source-plane box, in pixels)."""
    dtype, dev = p["theta_e_arcsec"].dtype, p["theta_e_arcsec"].device
    c = (npix - 1) / 2
    off = (torch.arange(supersample, dtype=dtype, device=dev) + 0.5) / supersample - 0.5
    sx = ((c_i.to(dtype) - c)[:, None, None] + off[None, None, :]) * pixscale
    sy = ((r_i.to(dtype) - c)[:, None, None] + off[None, :, None]) * pixscale
    pcol = {k: (v[b_i][:, None, None] if v.ndim == 1 else v[b_i]) for k, v in p.items()}
    sbx, sby = _kernel(_ray_shoot, compiled)(sx, sy, pcol)
    sub = _kernel(_source_sb, compiled)(sbx, sby, sx, sy, pcol, n_clumps, _clump4, suppress_inner)
    # cuspy cores: sub-pixels whose source-plane cell lies within CUSP_NEAR cells of the
    # source centre are refined recursively (see _cusp_average)
    _, q_src = ellipticity_to_phi_q(p["src_e1"], p["src_e2"])
    d_min = cusp_min_cell(p["src_r_sersic_arcsec"], p["src_n_sersic"], q_src)
    h = pixscale / supersample
    g = torch.hypot(sbx - pcol["src_x_arcsec"], sby - pcol["src_y_arcsec"])
    d = h * stretch[:, None, None]
    ref = (g < CUSP_NEAR * d) & (d > d_min[b_i][:, None, None])
    if ref.any():
        m, j1, j2 = ref.nonzero(as_tuple=True)
        sub = sub.index_put((m, j1, j2), _cusp_average(b_i[m], sx[m, 0, j2], sy[m, j1, 0], h, stretch[m],
                                                       d_min[b_i[m]], p, n_clumps, suppress_inner))
    return sub.mean(dim=(1, 2))




_CELL_KEYS = {"theta_e_arcsec", "e1", "e2", "center_x_arcsec", "center_y_arcsec", "gamma1", "gamma2", "src_x_arcsec",
              "src_y_arcsec", "src_r_sersic_arcsec", "src_n_sersic", "src_e1", "src_e2", "clump_dx", "clump_dy",
              "clump_sigma", "clump_frac"}


def cusp_min_cell(r_sersic, n_sersic, q_src):
    """Source-plane cell size [arcsec] below which a Sersic core is not refined further:
    CUSP_MIN_FRACTION R_sersic sqrt(q) at n = 4, growing as (4/n)^2 for shallower cores
    (the midpoint rule is second-order accurate on a smooth core; an n = 4 core is not)."""
    return CUSP_MIN_FRACTION * r_sersic * torch.sqrt(q_src) * torch.clamp(4.0 / n_sersic, min=1.0) ** 2


def _cusp_average(bidx, cx, cy, h, stretch, d_min, p, n_clumps, suppress_inner):
    """Mean unit-flux surface brightness [1/arcsec^2] over square image-plane cells (centres
    cx, cy, side h [arcsec]) of injections ``bidx``: each cell is split CUSP_SPLIT x
    CUSP_SPLIT, and children whose ray-shot centre lies within CUSP_NEAR source-plane cell
    sizes (h x ``stretch``, the local source/image length ratio) of the source centre are
    split again, down to ``d_min`` [arcsec] or CUSP_LEVELS levels.  A midpoint rule misses
    the flux of a cuspy core (Sersic n = 4, R_e = 0.05": 28 % at 4 x 4 sub-pixels, 7 % at
    16 x 16); this keeps it within 1 % (tested), for ~ (2 CUSP_NEAR)^2 |mu| cells per level
    and image of the source centre."""
    dtype, dev = cx.dtype, cx.device
    acc = torch.zeros(len(bidx), dtype=dtype, device=dev)
    k = CUSP_SPLIT
    off = (torch.arange(k, dtype=dtype, device=dev) + 0.5) / k - 0.5
    dx, dy = off.repeat(k), off.repeat_interleave(k)
    owner = torch.arange(len(bidx), device=dev)
    w = 1.0
    tree, levels = use_subtree_sums(acc), []
    for level in range(CUSP_LEVELS):
        cx = (cx[:, None] + dx[None] * h).reshape(-1)
        cy = (cy[:, None] + dy[None] * h).reshape(-1)
        owner = owner.repeat_interleave(k * k)
        h, w = h / k, w / k**2
        b = bidx[owner]
        col = {key: (v[b][:, None, None] if v.ndim == 1 else v[b]) for key, v in p.items() if key in _CELL_KEYS}
        x, y = cx[:, None, None], cy[:, None, None]
        bx, by = _ray_shoot(x, y, col)
        sb = _source_sb(bx, by, x, y, col, n_clumps, _clump4, suppress_inner)[:, 0, 0]
        g = torch.hypot(bx - col["src_x_arcsec"], by - col["src_y_arcsec"])[:, 0, 0]
        d = h * stretch[owner]
        refine = (g < CUSP_NEAR * d) & (d > d_min[owner])
        nxt = refine.nonzero().squeeze(1)  # the cells refined further, in order
        if level == CUSP_LEVELS - 1 or len(nxt) * k * k > CUSP_MAX_CELLS:
            nxt, refine = nxt[:0], torch.zeros_like(refine)
        if tree:  # (cusp.subtree_sums: deterministic on CUDA)
            levels.append((torch.where(refine, torch.zeros_like(sb), w * sb), nxt))
        else:
            acc.index_add_(0, owner[~refine], w * sb[~refine])
        if not len(nxt):
            break
        cx, cy, owner = cx[nxt], cy[nxt], owner[nxt]
    return subtree_sums(levels, k * k) if tree else acc


def render_arcs(cols: dict, *, npix: int = STAMP_PIX, pixscale: float = PIXSCALE_ARCSEC, suppress_inner: bool = False,
                device: str | torch.device = "cpu", dtype=torch.float64, chunk: int = 64,
                radius_fwhm: float = 4.0, adaptive: bool = True, compiled: bool = False, fused: bool = False,
                psf_kernels=None) -> RenderResult:
    """Render a batch described by ``cols`` (arrays keyed as lensaudit.injection.params;
    optional clump arrays clump_dx/dy/sigma/frac of shape (B, K)).  ``adaptive``
    supersamples only the pixels that need it (default); False supersamples all.
    ``psf_kernels``: pixelised PSFs instead of the Moffat columns, (3, K, K) for every row or
    (B, 3, K, K), K odd, each normalised here to unit sum.  ``fused``: the Triton renderer
    (``lensaudit.injection.fused``, float32, for a CUDA device; same algorithm as ``adaptive``)."""
    if fused:
        return _render_arcs_fused(cols, npix, pixscale, suppress_inner, device, chunk, radius_fwhm, psf_kernels)
    p = columns_to_device(cols, device, dtype)
    supersample, fwhm_max = _host_scalars(cols, dtype)
    flux = mag_to_nmgy(torch.stack([p[f"src_mag_{b}"] for b in BANDS], dim=1))
    kernels = _psf_kernels(p, psf_kernels, npix, pixscale, radius_fwhm, dtype, device, fwhm_max)
    n_clumps = int(p["clump_frac"].shape[1]) if "clump_frac" in p else 0
    images, mags, units = [], [], []
    B = p["theta_e_arcsec"].shape[0]
    for s in range(0, B, chunk):
        sl = {k: v[s:s + chunk] for k, v in p.items()}
        if adaptive:
            unit = render_unit_lensed_adaptive(sl, npix, supersample, pixscale, suppress_inner, n_clumps, compiled=compiled)
        else:
            unit = render_unit_lensed(sl, npix, supersample, pixscale, suppress_inner, n_clumps)
        kern = kernels(s, s + chunk)
        # one morphology in every band: convolve the unit image once per band kernel, then scale
        img = convolve_same(unit[:, None], kern) * flux[s:s + chunk, :, None, None]
        images.append(img)
        mags.append(unit.sum(dim=(1, 2)))
        units.append(unit)
    return RenderResult(torch.cat(images), torch.cat(mags), torch.cat(units))


def _psf_kernels(p: dict, psf_kernels, npix: int, pixscale: float, radius_fwhm: float, dtype, device,
                 fwhm_max: float | None):
    """A function (start, stop) -> (b, 3, K, K) unit-sum kernels of rows start:stop: the
    pixelised ``psf_kernels`` when given (checked), else Moffat kernels from the FWHM columns
    (``fwhm_max``: their largest value, ``_host_scalars``)."""
    B = p["theta_e_arcsec"].shape[0]
    if psf_kernels is not None:
        k = torch.as_tensor(psf_kernels, dtype=dtype, device=device)
        if k.ndim == 3:
            k = k[None]
        if k.ndim != 4 or k.shape[1] != len(BANDS) or k.shape[-1] != k.shape[-2] or k.shape[-1] % 2 == 0 \
                or k.shape[0] not in (1, B):
            raise ValueError(f"psf_kernels must be (3, K, K) or ({B}, 3, K, K) with K odd, got {tuple(k.shape)}")
        if k.shape[-1] > npix:
            raise ValueError(f"PSF kernel {k.shape[-1]} px exceeds the {npix} px stamp")
        tot = k.sum(dim=(-2, -1), keepdim=True)
        if not bool(torch.isfinite(k).all()) or not bool((tot > 0).all()):
            raise ValueError("psf_kernels must be finite with a positive sum in every band")
        k = k / tot
        return lambda s, e: k if k.shape[0] == 1 else k[s:e]
    fwhm = torch.stack([p[f"psf_fwhm_{b}_arcsec"] for b in BANDS], dim=1)
    beta = p["moffat_beta"][:, None].expand_as(fwhm)
    h = kernel_half_width(fwhm_max, pixscale, radius_fwhm)
    if 2 * h + 1 > npix:
        raise ValueError(f"PSF kernel {2 * h + 1} px (FWHM {fwhm_max:.2f}\") exceeds the {npix} px stamp")
    return lambda s, e: moffat_kernels(fwhm[s:e], beta[s:e], pixscale, h)


# the fused renderer's Moffat kernel spectra: by ``psf.moffat_spectra`` (two small matrix products of the
# kernel's quadrant, no FFT); False: the previous path, rfft2 of each (B, 3, K, K) kernel (kept to compare)
FUSED_MOFFAT_SPECTRA = True
# transform sizes that cuFFT runs faster than the smallest 5-smooth size above them (measured on an H200,
# bench/RESULTS.md: 144 = 2^4 3^2 beat 135, 140, 150 and 160 for the 3-band convolution); any size >= H + h is exact
FUSED_FFT_SIZES = (144,)
# the fused renderer's PSF stage with fewer passes over memory: the unit image rendered into the transform's
# zero-padded buffer; its spectrum times each band's Moffat spectrum (rows u <= n / 2, normalised and mirrored on
# the fly) and flux in one kernel (``fused.spectral_product``); irfft2's 1 / n^2 folded into the fluxes.
# False: the normalised, mirrored spectra, torch's products and irfft2's own scaling (kept to compare)
FUSED_SPECTRAL_PRODUCT = True
# ... and with the Moffat spectra, the inverse transform as one complex (c2c) transform per pair of stamps
# (``fused.spectral_product_pairs``: stamp 2p + i stamp 2p + 1, Hermitian-extended) instead of torch's c2r irfft2,
# which copies its whole input first (cuFFT's c2r may overwrite it): on an H100 the whole renderer made 565k stamps/s
# against 518k with irfft2 in the same process, the images equal to float32 rounding (bench/RESULTS.md, session 27)
FUSED_PACKED_INVERSE = True


def fused_fft_size(n_min: int) -> int:
    """The fused renderer's transform size for a 'same' window needing >= ``n_min`` points: the
    smallest of ``FUSED_FFT_SIZES`` that fits when it is within 10 % of ``fast_fft_size``."""
    from lensaudit.injection.psf import fast_fft_size

    base = fast_fft_size(n_min)
    fits = [m for m in FUSED_FFT_SIZES if n_min <= m <= 1.1 * base]
    return min(fits) if fits else base


def _render_arcs_fused(cols: dict, npix: int, pixscale: float, suppress_inner: bool, device, chunk: int,
                       radius_fwhm: float, psf_kernels) -> RenderResult:
    """``render_arcs(fused=True)``: the Triton unit image, then the three bands as one FFT
    product: rfft2 of the unit image once, times each band's kernel spectrum and the band's
    flux, one batched irfft2.  Moffat kernel spectra come from ``psf.moffat_half_spectra`` (centred
    kernels, no FFT per stamp; ``FUSED_MOFFAT_SPECTRA``), multiplied in by ``fused.spectral_product``
    (``FUSED_SPECTRAL_PRODUCT``), or packed in pairs of stamps for one c2c inverse transform per pair
    (``FUSED_PACKED_INVERSE``); pixelised PSFs are transformed by rfft2 (a shared one once per call)."""
    from lensaudit.injection.fused import render_unit_lensed_fused, spectral_product, spectral_product_pairs, unpack_pairs
    from lensaudit.injection.psf import moffat_half_spectra, moffat_spectra

    dtype = torch.float32
    p = columns_to_device(cols, device, dtype)
    supersample, fwhm_max = _host_scalars(cols, dtype)
    flux = mag_to_nmgy(torch.stack([p[f"src_mag_{b}"] for b in BANDS], dim=1))
    kernels = _psf_kernels(p, psf_kernels, npix, pixscale, radius_fwhm, dtype, device, fwhm_max)
    analytic = psf_kernels is None and FUSED_MOFFAT_SPECTRA
    if analytic:
        fwhm = torch.stack([p[f"psf_fwhm_{b}_arcsec"] for b in BANDS], dim=1)
        beta = p["moffat_beta"][:, None].expand_as(fwhm)
        h_m = kernel_half_width(fwhm_max, pixscale, radius_fwhm)  # as ``_psf_kernels``
    n_clumps = int(p["clump_frac"].shape[1]) if "clump_frac" in p else 0
    B = p["theta_e_arcsec"].shape[0]
    images = torch.empty((B, len(BANDS), npix, npix), dtype=dtype, device=device)
    units = torch.empty((B, npix, npix), dtype=dtype, device=device)
    shared = None
    one_pass = FUSED_SPECTRAL_PRODUCT
    for s in range(0, B, chunk):
        sl = {k: v[s:s + chunk] for k, v in p.items()}
        if analytic:
            h = h_m
            n = fused_fft_size(npix + h)
            lo = 0  # centred kernels: the 'same' window starts at index 0
        else:
            kern = kernels(s, s + chunk)
            K = kern.shape[-1]
            h = K // 2
            n = fused_fft_size(npix + h)
            lo = h
            if kern.shape[0] == 1:
                if shared is None:
                    shared = torch.fft.rfft2(kern, s=(n, n))
                fk = shared
            else:
                fk = torch.fft.rfft2(kern, s=(n, n))
        # one pass: the unit image straight into the transform's zero-padded buffer (its rfft2 = rfft2(unit,
        # s=(n, n))), irfft2's 1 / n^2 folded into the fluxes (no pass over its output)
        padded = torch.zeros((len(sl["theta_e_arcsec"]), n, n), dtype=dtype, device=device) if one_pass else None
        unit = render_unit_lensed_fused(sl, npix, supersample, pixscale, suppress_inner, n_clumps,
                                        torch_cusp=_supersampled_pixels,
                                        out=None if padded is None else padded[:, :npix, :npix])
        if one_pass:
            fi = torch.fft.rfft2(padded)
            fl = flux[s:s + chunk] / (n * n)
            half = moffat_half_spectra(fwhm[s:s + chunk], beta[s:s + chunk], pixscale, h, n, dtype) if analytic else None
            if analytic and FUSED_PACKED_INVERSE:  # stamps in pairs, one complex inverse transform per pair
                unpack_pairs(torch.fft.ifft2(spectral_product_pairs(fi, half, fl), norm="forward"), lo,
                             images[s:s + chunk])
                full = None
            else:
                spec = spectral_product(fi, half, fl) if analytic else fi[:, None] * fk * fl[:, :, None, None]
                full = torch.fft.irfft2(spec, s=(n, n), norm="forward")
        else:  # the previous PSF stage (FUSED_SPECTRAL_PRODUCT = False)
            if analytic:
                fk = moffat_spectra(fwhm[s:s + chunk], beta[s:s + chunk], pixscale, h, n, dtype=dtype)
            full = torch.fft.irfft2(torch.fft.rfft2(unit, s=(n, n))[:, None] * fk * flux[s:s + chunk, :, None, None],
                                    s=(n, n))
        if full is not None:
            images[s:s + chunk] = full[..., lo:lo + npix, lo:lo + npix]
        units[s:s + chunk] = unit
    return RenderResult(images, units.sum(dim=(1, 2)), units)
