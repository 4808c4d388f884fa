"""Images of the embedded mock sky: 101x101 g,r,z stamps in nmgy per pixel, batched (torch, CPU).

Each stamp is centred on its object (north up, east left: x = -dRA cos(dec), y = dDec,
0.262"/px) and holds every catalogue source within reach: Sersic light (Tractor shape_r
as half-light radius, e1/e2, sersic; PSF-type sources as points) with the catalogue
fluxes, the truth table's confuser morphology (ring, spiral arms, blue knots; edge-on
disks and mergers come from the catalogue itself), and for true lenses a lensed arc (SIE
+ shear with the object's ellipticity; theta_E and the source drawn in the truth table)
from the batched injection renderer (``lensaudit.injection.render``).  Then each band is
convolved with a Moffat PSF (beta 3.5, FWHM = psfsize_<band>, ``lensaudit.injection.psf``),
sky noise with the per-pixel sigma implied by psfdepth_<band> is added with the sources'
Poisson-like noise, and artefacts are drawn at the configured rates (NaN patch, missing
band, bright-star spike).

Speed (``bench/bench_mock_render.py``): many stamps per call.
- Sersic light: each source is evaluated at pixel centres only inside a window holding
  >= 1 - SERSIC_FLUX_TAIL of its flux (half-widths WINDOW_HALF_PIX, else the whole stamp),
  all sources of one window size in one tensor, a pixel's integral being its centre value
  plus 1/24 of the discrete Laplacian (second order); the PATCH_HALF_PIX pixels around its
  centre are integrated on PATCH_SUPERSAMPLE^2 sub-pixels with the cusp refined
  recursively (as the injection renderer does), so the total flux is the catalogue flux
  within 1 % (tested) for n up to 6 and R_e down to 0.05".
- PSF: per stamp, real FFTs of size >= N + h (128 for the 101 px stamps; the kernel wrapped
  around the origin, so that no wrap-around reaches the stamp); a stamp whose only light
  is one Sersic source transforms its image once for the three bands.
- Noise: one Gaussian draw per pixel with sigma^2 = sigma_sky^2 + the sources'
  Poisson-like variance (``arc_poisson_sigma``, the model of ``add_arc_noise``), from a
  torch generator seeded per galaxy; with ``MockSkyConfig.noise_block_factor`` > 1 the
  unit draw is first convolved with ``lensaudit.survey.noise.correlation_kernel`` (drawn on
  a margin of the kernel's half-width, so no edge effect), correlated like coadd noise.
- Arcs: the adaptive injection renderer (float32, supersampling 4, cusp refinement), one
  lens per call.

Determinism: every random number of a stamp comes from its own seed (seed, galaxy_id),
and no computation mixes stamps in a way that can change its rounding (per-source tensors
of equal shape, FFT calls per stamp, one arc per call, one torch thread), so a stamp is
the same bytes whatever batch it is rendered in (tested).  ``lensaudit.mock.reference``
keeps the first, per-stamp renderer (numpy, lenstronomy arcs, ~90 stamps/s per core), the
reference of the tests and the benchmark.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.special import gammaincinv

from lensaudit.mock.confusers import ring_draw
from lensaudit.injection.lens import ellipticity_to_phi_q
from lensaudit.injection.psf import fast_fft_size, kernel_half_width, moffat_kernels
from lensaudit.injection.realism import sigma_pix_from_depth, sky_nmgy_per_pixel
from lensaudit.injection.render import CUSP_LEVELS, CUSP_NEAR, CUSP_SPLIT, cusp_min_cell, mag_to_nmgy, render_unit_lensed_adaptive
from lensaudit.injection.source import R_SMOOTH_ARCSEC, b_n, sersic_sb, sersic_unit_flux_amp
from lensaudit.mock.config import MockSkyConfig
from lensaudit.survey.noise import correlation_kernel
from lensaudit.survey.instrument import BANDS, MOFFAT_BETA, PIXSCALE_ARCSEC, STAMP_PIX

#: a Sersic window holds all but this fraction of the source's flux (elliptical radius from
#: the regularised incomplete gamma function, boxed by the major axis)
SERSIC_FLUX_TAIL = 1e-3
#: window half-widths [pixels]; a source needing more is evaluated on the whole stamp
WINDOW_HALF_PIX = (8, 16, 32)
#: pixels within this many of a source's centre pixel are integrated on sub-pixels
PATCH_HALF_PIX = 2
PATCH_SUPERSAMPLE = 4
#: a source smaller than the sub-pixels: cells within COMPACT_REACH R_e / sqrt(q) of its
#: centre are split until smaller than COMPACT_CELL R_e sqrt(q) (else a 0.05" exponential
#: loses 0.5 % of its flux)
COMPACT_REACH = 5.0
COMPACT_CELL = 0.5
#: the confuser morphologies with light of their own (edge-on disks and mergers come from
#: the catalogue), drawn on a 2x supersampled grid (as the reference)
MORPHOLOGIES = ("ring", "spiral", "blue_clumpy")
MORPH_SUPERSAMPLE = 2
#: a ring's light is evaluated within this many widths of its radius (float32 exp is +0 beyond
#: 14.42 widths: -(15^2)/2 < -104)
RING_ZERO_SIGMAS = 15.0
#: the lensed arcs: supersampling of the adaptive injection renderer
ARC_SUPERSAMPLE = 4
#: float32 arcs differ from float64 by < 1e-5 of the peak (and from lenstronomy by < 1 %: tested)
ARC_DTYPE = torch.float32
#: Sersic indices of the Tractor types (SER carries its own)
TYPE_SERSIC_N = {"DEV": 4.0, "EXP": 1.0, "REX": 1.0}
R_HALF_MIN_ARCSEC = 0.05
ELLIPTICITY_MAX = 0.9
LENS_ELLIPTICITY_MAX = 0.3


@dataclass
class StampSpec:
    """Everything one stamp needs.  Source positions in arcsec from the stamp centre
    (x east-left as above, y north); fluxes (S, 3) nmgy in g, r, z."""

    galaxy_id: str
    fwhm_arcsec: np.ndarray            # (3,) psfsize_g/r/z
    psfdepth: np.ndarray               # (3,) 1/nmgy^2
    src_x: np.ndarray
    src_y: np.ndarray
    src_flux: np.ndarray               # (S, 3)
    src_r_half: np.ndarray
    src_n: np.ndarray
    src_e1: np.ndarray
    src_e2: np.ndarray
    point_x: np.ndarray
    point_y: np.ndarray
    point_flux: np.ndarray             # (P, 3)
    morphology: str = ""
    target_flux: np.ndarray = field(default_factory=lambda: np.zeros(3))
    target_shape_r: float = 0.0
    arc: dict | None = None            # lens + source parameters, injection-renderer keys, mock frame


def stamp_rng(seed: int, galaxy_id) -> np.random.Generator:
    """The per-galaxy random generator (seed, CRC32 of the galaxy_id), as the reference."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(str(galaxy_id).encode())]))


# ---------------------------------------------------------------- Sersic light

def sersic_window_half_pix(r_half, n, e1, e2, pixscale: float = PIXSCALE_ARCSEC) -> np.ndarray:
    """Half-width [pixels] of the box around a source's centre pixel holding all but
    SERSIC_FLUX_TAIL of its flux: the elliptical radius R with P(2n, b_n (R/R_e)^(1/n)) =
    1 - tail (lenstronomy's product-averaged radius, whose ellipse has area pi R^2) reaches
    R / sqrt(q) along the major axis."""
    n = np.asarray(n, dtype=np.float64)
    bn = np.maximum(1.9992 * n - 0.3271, 1e-5)
    radius = np.asarray(r_half, dtype=np.float64) * (gammaincinv(2 * n, 1 - SERSIC_FLUX_TAIL) / bn) ** n
    e = np.clip(np.hypot(e1, e2), 0, 0.9999)
    q = (1 - e) / (1 + e)
    return np.ceil(radius / np.sqrt(q) / pixscale).astype(np.int64) + 1


def _sersic_pixels(x, y, cx, cy, p: dict) -> torch.Tensor:
    """Unit-flux Sersic surface brightness [1/arcsec^2] at (x, y), as
    ``lensaudit.injection.source.sersic_sb`` (lenstronomy's SERSIC_ELLIPSE, R floored at
    R_SMOOTH_ARCSEC), written with in-place operations for the large window tensors:
    (R/R_s)^(1/n) = exp((log R^2 / 2 - log R_s) / n)."""
    e1, e2 = p["e1"], p["e2"]
    norm = torch.sqrt(torch.clamp(torch.abs(1 - e1**2 - e2**2), min=1e-6))
    dx, dy = x - cx, y - cy
    xp = ((1 - e1) / norm * dx) - (e2 / norm * dy)
    yp = ((1 + e1) / norm * dy) - (e2 / norm * dx)
    r2 = xp.mul_(xp).addcmul_(yp, yp).clamp_(min=R_SMOOTH_ARCSEC**2)
    inv_n = 1.0 / p["n"]
    r2.log_().mul_(0.5 * inv_n).sub_(torch.log(p["r"]) * inv_n).exp_()
    return r2.sub_(1).mul_(-b_n(p["n"])).exp_().mul_(p["amp"])


def _params(r_half, n, e1, e2, dtype):
    t = {k: torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype) for k, v in
         (("r", r_half), ("n", n), ("e1", e1), ("e2", e2))}
    t["amp"] = sersic_unit_flux_amp(t["r"], t["n"])
    return t


def _patch_flux(cx, cy, ic, jc, r_half, n, e1, e2, size: int, pixscale: float) -> torch.Tensor:
    """(S, k, k) unit-flux per pixel (float64) of the k = 2 PATCH_HALF_PIX + 1 pixels around
    each source's centre pixel (ic, jc): PATCH_SUPERSAMPLE^2 sub-pixel midpoints, cells
    within CUSP_NEAR cell sizes of the centre split CUSP_SPLIT^2 down to ``cusp_min_cell``
    (as ``lensaudit.injection.render._cusp_average``, here without a lens), and cells of a
    source smaller than them (within COMPACT_REACH R_e / sqrt(q)) down to COMPACT_CELL R_e sqrt(q)."""
    dt = torch.float64
    S, k, ss = len(cx), 2 * PATCH_HALF_PIX + 1, PATCH_SUPERSAMPLE
    c = (size - 1) / 2
    p = _params(r_half, n, e1, e2, dt)
    _, q = ellipticity_to_phi_q(p["e1"], p["e2"])
    d_min = cusp_min_cell(p["r"], p["n"], q)
    compact_reach = COMPACT_REACH * p["r"] / torch.sqrt(q)
    compact_cell = COMPACT_CELL * p["r"] * torch.sqrt(q)
    cx_t, cy_t = torch.as_tensor(cx, dtype=dt), torch.as_tensor(cy, dtype=dt)
    # level 0: the regular sub-pixel grid, (S, k ss, k ss); columns j -> x = -(j - c) pixscale
    # (east left), rows i -> y = (i - c) pixscale
    u = torch.arange(k * ss, dtype=dt)
    off = (u // ss) - PATCH_HALF_PIX + ((u % ss) + 0.5) / ss - 0.5
    x = (-(torch.as_tensor(jc, dtype=dt)[:, None] + off[None] - c) * pixscale)[:, None, :]
    y = ((torch.as_tensor(ic, dtype=dt)[:, None] + off[None] - c) * pixscale)[:, :, None]
    col = {key: v[:, None, None] for key, v in p.items()}
    h = pixscale / ss
    sb = sersic_sb(x, y, col["amp"], col["r"], col["n"], col["e1"], col["e2"], cx_t[:, None, None], cy_t[:, None, None])
    g = torch.hypot(x - cx_t[:, None, None], y - cy_t[:, None, None])
    refine = (((g < CUSP_NEAR * h) & (h > d_min[:, None, None]))
              | ((g < compact_reach[:, None, None]) & (h > compact_cell[:, None, None])))
    cells = torch.where(refine, torch.zeros_like(sb), sb * h * h)
    acc = cells.reshape(S, k, ss, k, ss).sum(dim=(2, 4)).reshape(-1)
    if not bool(refine.any()):
        return acc.reshape(S, k, k)
    owner, ri, ci = refine.nonzero(as_tuple=True)
    pix = owner * k * k + torch.div(ri, ss, rounding_mode="floor") * k + torch.div(ci, ss, rounding_mode="floor")
    x, y = x[owner, 0, ci], y[owner, ri, 0]
    sub = (torch.arange(CUSP_SPLIT, dtype=dt) + 0.5) / CUSP_SPLIT - 0.5
    ox, oy = -sub.repeat(CUSP_SPLIT), sub.repeat_interleave(CUSP_SPLIT)
    for level in range(1, CUSP_LEVELS + 1):
        x = (x[:, None] + ox[None] * h).reshape(-1)
        y = (y[:, None] + oy[None] * h).reshape(-1)
        pix = pix.repeat_interleave(CUSP_SPLIT**2)
        owner = owner.repeat_interleave(CUSP_SPLIT**2)
        h = h / CUSP_SPLIT
        sb = sersic_sb(x, y, p["amp"][owner], p["r"][owner], p["n"][owner], p["e1"][owner], p["e2"][owner],
                       cx_t[owner], cy_t[owner])
        g = torch.hypot(x - cx_t[owner], y - cy_t[owner])
        refine = ((g < CUSP_NEAR * h) & (h > d_min[owner])) | ((g < compact_reach[owner]) & (h > compact_cell[owner]))
        if level == CUSP_LEVELS:
            refine = torch.zeros_like(refine)
        acc.index_add_(0, pix[~refine], sb[~refine] * h * h)
        if not bool(refine.any()):
            break
        x, y, pix, owner = x[refine], y[refine], pix[refine], owner[refine]
    return acc.reshape(S, k, k)


def render_sersic_windows(cx, cy, r_half, n, e1, e2, size: int = STAMP_PIX, pixscale: float = PIXSCALE_ARCSEC):
    """Unit-flux Sersic images of S sources on a ``size`` stamp (centres cx, cy [arcsec] in
    the mock frame).  Returns a list of (source index, image (h, w) float32 [flux per
    pixel], row0, col0): the image covers stamp rows row0.. and columns col0.. (possibly
    beyond the stamp, which the caller crops)."""
    cx, cy, r_half, n, e1, e2 = (np.asarray(v, np.float64) for v in (cx, cy, r_half, n, e1, e2))
    S = len(cx)
    if S == 0:
        return []
    c = (size - 1) / 2
    jc = np.rint(c - cx / pixscale).astype(np.int64)
    ic = np.rint(c + cy / pixscale).astype(np.int64)
    half = sersic_window_half_pix(r_half, n, e1, e2, pixscale)
    bucket = np.searchsorted(np.asarray(WINDOW_HALF_PIX), half)   # len(WINDOW_HALF_PIX): whole stamp
    w = np.where(bucket < len(WINDOW_HALF_PIX), np.asarray(WINDOW_HALF_PIX + (0,))[bucket], half)
    # sources whose window (or, for the whole-stamp ones, whose 1 - tail box) misses the stamp add nothing (bucket -1)
    bucket = np.where((ic + w >= 0) & (ic - w < size) & (jc + w >= 0) & (jc - w < size), bucket, -1)
    patch = torch.zeros((S, 2 * PATCH_HALF_PIX + 1, 2 * PATCH_HALF_PIX + 1), dtype=torch.float32)
    # the refined core only where it reaches the stamp (most neighbours lie outside it)
    P = PATCH_HALF_PIX
    keep = np.flatnonzero((bucket >= 0) & (ic + P >= 0) & (ic - P < size) & (jc + P >= 0) & (jc - P < size))
    if len(keep):
        patch[keep] = _patch_flux(cx[keep], cy[keep], ic[keep], jc[keep], r_half[keep], n[keep], e1[keep], e2[keep],
                                  size, pixscale).to(torch.float32)
    out = []
    dt = torch.float32
    for b in range(len(WINDOW_HALF_PIX) + 1):
        sel = np.flatnonzero(bucket == b)
        if not len(sel):
            continue
        p = _params(r_half[sel], n[sel], e1[sel], e2[sel], dt)
        p = {k: v[:, None, None] for k, v in p.items()}
        # pixel centres with one extra ring for the Laplacian of the midpoint correction
        if b < len(WINDOW_HALF_PIX):
            W = WINDOW_HALF_PIX[b]
            d = torch.arange(-W - 1, W + 2, dtype=dt)
            cols = torch.as_tensor(jc[sel], dtype=dt)[:, None] + d[None]
            rows = torch.as_tensor(ic[sel], dtype=dt)[:, None] + d[None]
            row0, col0 = ic[sel] - W, jc[sel] - W
        else:
            ax = torch.arange(-1, size + 1, dtype=dt)
            cols, rows = ax[None].expand(len(sel), size + 2), ax[None].expand(len(sel), size + 2)
            row0, col0 = np.zeros(len(sel), np.int64), np.zeros(len(sel), np.int64)
        x = (-(cols - c) * pixscale)[:, None, :]
        y = ((rows - c) * pixscale)[:, :, None]
        sx = torch.as_tensor(cx[sel], dtype=dt)[:, None, None]
        sy = torch.as_tensor(cy[sel], dtype=dt)[:, None, None]
        f = _sersic_pixels(x, y, sx, sy, p).mul_(pixscale**2)
        # pixel integral = centre value + (h^2/24) Laplacian + O(h^4): the discrete Laplacian of
        # the centre values (the corrections telescope, so the flux is not moved between regions)
        lap = torch.add(f[:, :-2, 1:-1], f[:, 2:, 1:-1]).add_(f[:, 1:-1, :-2]).add_(f[:, 1:-1, 2:]).div_(24)
        img = torch.mul(f[:, 1:-1, 1:-1], 1 - 4 / 24).add_(lap)  # the centre value + Laplacian / 24, in place
        img_np, patch_np = img.numpy(), patch.numpy()  # the per-source copies below without torch's slicing
        for m, s in enumerate(sel):
            # the refined patch replaces the midpoint values around the centre
            i0, j0 = ic[s] - P - row0[m], jc[s] - P - col0[m]
            h, w = img.shape[1], img.shape[2]
            a0, a1 = max(i0, 0), min(i0 + 2 * P + 1, h)
            b0, b1 = max(j0, 0), min(j0 + 2 * P + 1, w)
            if a0 < a1 and b0 < b1:
                img_np[m, a0:a1, b0:b1] = patch_np[s, a0 - i0:a1 - i0, b0 - j0:b1 - j0]
            out.append((int(s), img[m], int(row0[m]), int(col0[m])))
    return out


def _add_window(canvas: torch.Tensor, img: torch.Tensor, row0: int, col0: int, flux: torch.Tensor) -> None:
    """canvas (3, N, N) += flux (3,) x img cropped to the canvas (float32 products and sums, through
    numpy views of the tensors: the same IEEE operations without torch's per-slice dispatch)."""
    N = canvas.shape[-1]
    h, w = img.shape
    a0, a1 = max(row0, 0), min(row0 + h, N)
    b0, b1 = max(col0, 0), min(col0 + w, N)
    if a0 < a1 and b0 < b1:
        canvas.numpy()[:, a0:a1, b0:b1] += flux.numpy()[:, None, None] * img.numpy()[a0 - row0:a1 - row0,
                                                                                     b0 - col0:b1 - col0][None]


# ---------------------------------------------------------------- morphology and arcs

def _bin(prof: torch.Tensor, s: int) -> torch.Tensor:
    """Sum of each s x s block of sub-pixels: (m s, m s) -> (m, m)."""
    m = prof.shape[0] // s
    return prof.view(m, s, m * s).sum(dim=1).view(m, m, s).sum(dim=2)


def _ring_binned(r0: float, w: float, xs: torch.Tensor, ys: torch.Tensor, size: int, s: int) -> torch.Tensor:
    """(size, size) binned Gaussian ring exp(-(r - r0)^2 / 2 w^2) [arcsec] on the s x s sub-pixel
    grid (xs, ys): evaluated only in the box of pixels within r0 + RING_ZERO_SIGMAS w of the
    centre; beyond it the float32 exponent is below -104 and exp gives exactly +0, so the
    result equals the whole grid's to the bit (tested)."""
    hs = float(ys[1] - ys[0])
    half = (len(ys) - 1) / 2
    reach = (r0 + RING_ZERO_SIGMAS * w) / hs  # [sub-pixels]
    p0 = max(0, int(math.floor((half - reach) / s)) - 1)
    p1 = min(size, int(math.ceil((half + reach) / s)) + 1)
    box = slice(p0 * s, p1 * s)
    r = torch.hypot(xs[None, box], ys[box, None])
    binned = torch.zeros((size, size), dtype=xs.dtype)
    binned[p0:p1, p0:p1] = _bin(r.sub_(r0).mul_(1 / w).square_().mul_(-0.5).exp_(), s)
    return binned


def _morphology(kind: str, rng: np.random.Generator, shape_r: float, flux: np.ndarray, size: int,
                pixscale: float) -> torch.Tensor | None:
    """Extra light (3, size, size) [flux per pixel] of a confuser's morphology (the
    reference's profiles and random draws, on a MORPH_SUPERSAMPLE grid, then binned)."""
    if kind not in MORPHOLOGIES:
        return None
    s = MORPH_SUPERSAMPLE
    n_sub = size * s
    ax = (torch.arange(n_sub, dtype=torch.float32) - (n_sub - 1) / 2) * (pixscale / s)
    xs, ys = -ax, ax  # x along columns (east left), y along rows
    rh = max(float(shape_r), 0.5)
    if kind == "ring":
        r0, w, ring_flux = ring_draw(rng, flux)
        binned = _ring_binned(r0, w, xs, ys, size, s)
    elif kind == "spiral":
        r = torch.hypot(xs[None, :], ys[:, None])
        th = torch.atan2(ys[:, None], xs[None, :])
        arm = torch.cos(2 * (th - torch.log(torch.clamp(r, min=0.1)) / 0.35)).square_().square_().square_()  # cos^8
        prof = arm.mul_(torch.exp(-r / (1.5 * rh))).mul_(r > 0.6 * rh)
        frac = np.array([0.25, 0.2, 0.12])
    else:
        # round Gaussian knots: exp(-(dx^2 + dy^2) / 2 s^2) = outer product of two 1-d Gaussians
        prof = torch.zeros((n_sub, n_sub), dtype=torch.float32)
        for _ in range(int(rng.integers(3, 6))):
            a, d = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.5) * rh
            gx = torch.exp(-0.5 * (xs - d * math.cos(a)) ** 2 / 0.15**2)
            gy = torch.exp(-0.5 * (ys - d * math.sin(a)) ** 2 / 0.15**2)
            prof.addr_(gy, gx)
        frac = np.array([0.4, 0.25, 0.12])
    if kind != "ring":
        binned = _bin(prof, s)
    tot = float(binned.sum(dtype=torch.float64))
    if tot <= 0:
        return None
    band_flux = ring_flux if kind == "ring" else frac * np.clip(flux, 0, None)
    f = torch.as_tensor(band_flux / tot, dtype=torch.float32)
    return f[:, None, None] * binned[None]


def arc_parameters(target_e1: float, target_e2: float, truth_row) -> dict:
    """Lens and source parameters of a true lens's arc in the mock frame (the lens's
    ellipticity is the target's, clipped to +-0.3 per component, as in the reference)."""
    t = truth_row
    mag_r = float(t.src_mag_r)
    return {"theta_e_arcsec": float(t.theta_e_arcsec),
            "e1": float(np.clip(target_e1, -LENS_ELLIPTICITY_MAX, LENS_ELLIPTICITY_MAX)),
            "e2": float(np.clip(target_e2, -LENS_ELLIPTICITY_MAX, LENS_ELLIPTICITY_MAX)),
            "center_x_arcsec": 0.0, "center_y_arcsec": 0.0, "gamma1": float(t.gamma1), "gamma2": float(t.gamma2),
            "src_x_arcsec": float(t.src_x_arcsec), "src_y_arcsec": float(t.src_y_arcsec),
            "src_r_sersic_arcsec": float(t.src_r_sersic_arcsec), "src_n_sersic": float(t.src_n_sersic),
            "src_e1": float(t.src_e1), "src_e2": float(t.src_e2),
            "src_mag_g": mag_r + float(t.src_g_r), "src_mag_r": mag_r, "src_mag_z": mag_r - float(t.src_r_z)}


def render_arc(arc: dict, size: int = STAMP_PIX, pixscale: float = PIXSCALE_ARCSEC) -> torch.Tensor:
    """(3, size, size) lensed arc [nmgy per pixel] (ARC_DTYPE), before the PSF, in the mock
    frame: the injection renderer's adaptive path (its frame has x along +columns, the
    mock's x runs east-left, so its image is mirrored left-right)."""
    keys = ("theta_e_arcsec", "e1", "e2", "center_x_arcsec", "center_y_arcsec", "gamma1", "gamma2", "src_x_arcsec",
            "src_y_arcsec", "src_r_sersic_arcsec", "src_n_sersic", "src_e1", "src_e2")
    p = {k: torch.tensor([arc[k]], dtype=ARC_DTYPE) for k in keys}
    unit = render_unit_lensed_adaptive(p, size, ARC_SUPERSAMPLE, pixscale)[0].flip(-1)
    flux = mag_to_nmgy(torch.tensor([arc[f"src_mag_{b}"] for b in BANDS], dtype=ARC_DTYPE))
    return flux[:, None, None] * unit[None]


# ---------------------------------------------------------------- PSF and noise

def fft_size(npix: int, half_width: int) -> int:
    """FFT size of a stamp's 'same' convolution: >= npix + h (the kernel wrapped around the
    origin then reaches no stamp pixel through the periodic boundary), a power of two when
    one is within 12 % (128 for the 101 px stamps up to h = 27), else 5-smooth."""
    m = npix + half_width
    p2 = 1 << (m - 1).bit_length()
    return p2 if p2 <= 1.12 * m else fast_fft_size(m)


def convolve_stamp(image: torch.Tensor, kernels: torch.Tensor, buffers: dict | None = None,
                   band_flux: torch.Tensor | None = None) -> torch.Tensor:
    """'same' convolution (zero padding) of one (3, N, N) stamp with its (3, K, K) kernels,
    by real FFTs of size ``fft_size``.  One call per stamp, always of the same shapes for a
    given kernel size: the transforms of a stamp never depend on other stamps (torch's MKL
    FFT of a batch may round differently with the batch's length).  With ``band_flux`` (3,),
    ``image`` is one (1, N, N) unit image shared by the bands, scaled by band_flux.

    ``buffers`` (a dict kept by the caller across stamps) holds the wrapped kernel and the
    zero-padded image of each shape, written in place (numpy views: no per-slice torch
    dispatch); the transforms see the same arrays as without it (the same bytes, tested)."""
    N = image.shape[-1]
    C, planes = kernels.shape[0], image.shape[0]
    h = kernels.shape[-1] // 2
    L = fft_size(N, h)
    buf = {} if buffers is None else buffers
    key = (C, planes, L, h, image.dtype)
    if key not in buf:
        # the kernel wrapped around the origin, the image padded with zeros to L x L: zero outside
        # what every stamp of this shape overwrites
        kw, pad = torch.zeros((C, L, L), dtype=image.dtype), torch.zeros((planes, L, L), dtype=image.dtype)
        buf[key] = (kw, kw.numpy(), pad, pad.numpy())
    kw, kw_np, pad, pad_np = buf[key]
    k = kernels.numpy()
    kw_np[:, :h + 1, :h + 1] = k[:, h:, h:]
    kw_np[:, :h + 1, L - h:] = k[:, h:, :h]
    kw_np[:, L - h:, :h + 1] = k[:, :h, h:]
    kw_np[:, L - h:, L - h:] = k[:, :h, :h]
    pad_np[:, :N, :N] = image.numpy()
    spec = torch.fft.rfft2(kw)
    if band_flux is not None:
        spec.mul_(band_flux.to(image.dtype)[:, None, None])
    spec.mul_(torch.fft.rfft2(pad))
    return torch.fft.irfft2(spec, s=(L, L))[:, :N, :N]


def noise_terms(sigma_sky, pixscale: float = PIXSCALE_ARCSEC) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, var) float32 (..., 3) of per-band sky sigmas [nmgy] (..., 3): a noise-free stamp's
    per-pixel variance is var + scale clip(image, 0), the sky's sigma_sky^2 and the sources'
    Poisson-like variance sigma_sky^2 clip(image, 0) / sky (``arc_poisson_sigma``, the model of
    ``lensaudit.injection.realism.add_arc_noise``)."""
    s2 = np.asarray(sigma_sky, dtype=np.float64) ** 2
    return (torch.as_tensor(s2 / sky_nmgy_per_pixel(pixscale), dtype=torch.float32),
            torch.as_tensor(s2, dtype=torch.float32))


def noise_sigma(image: torch.Tensor, scale: torch.Tensor, var: torch.Tensor,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel noise sigma [nmgy] of a (3, N, N) float32 noise-free stamp: the sky sigma per
    band and the sources' Poisson-like variance in quadrature, sqrt(var + scale clip(image, 0)),
    with the stamp's (3,) ``noise_terms``; into ``out`` when given."""
    return torch.clamp(image, min=0, out=out).mul_(scale[:, None, None]).add_(var[:, None, None]).sqrt_()


def stamp_psfs(fwhm_arcsec: np.ndarray, psfdepth: np.ndarray, pixscale: float = PIXSCALE_ARCSEC):
    """Per stamp (rows of the (B, 3) arrays): its (3, K, K) float32 Moffat kernels
    (half-width from its widest band, as the reference) and its per-band sky sigma [nmgy]
    implied by psfdepth.  Kernels of equal size are computed together (each kernel is
    elementwise in its own FWHM, so the batch does not change it)."""
    fwhm = np.asarray(fwhm_arcsec, dtype=np.float64).reshape(-1, 3)
    depth = np.asarray(psfdepth, dtype=np.float64).reshape(-1, 3)
    half = np.array([kernel_half_width(float(f.max()), pixscale) for f in fwhm], dtype=np.int64)
    kernels: list = [None] * len(fwhm)
    for h in np.unique(half):
        sel = np.flatnonzero(half == h)
        f = torch.as_tensor(fwhm[sel], dtype=torch.float32)
        k = moffat_kernels(f, torch.full_like(f, MOFFAT_BETA), pixscale, int(h))
        for m, s in enumerate(sel):
            kernels[s] = k[m]
    sigma = [sigma_pix_from_depth(np.where(d > 0, d, 1e-3), k.numpy()) for d, k in zip(depth, kernels)]
    return kernels, sigma


# ---------------------------------------------------------------- the batch

def render_stamps(specs: list[StampSpec], config: MockSkyConfig, size: int = STAMP_PIX, noise: bool = True,
                  pixscale: float = PIXSCALE_ARCSEC) -> np.ndarray:
    """(B, 3, size, size) float32 stamps [nmgy per pixel] of ``specs``.  ``noise=False``
    returns the noise-free, artefact-free PSF-convolved images (float32), for tests.

    Runs with one torch thread (restored afterwards): how torch splits an operation between
    threads can change its last bits, and a stamp must be the same bytes everywhere; the
    cutout job parallelises over sweep partitions instead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _render_stamps(specs, config, size, noise, pixscale)
    finally:
        torch.set_num_threads(threads)


def _render_stamps(specs: list[StampSpec], config: MockSkyConfig, size: int, noise: bool,
                   pixscale: float) -> np.ndarray:
    B = len(specs)
    if B == 0:
        return np.zeros((0, 3, size, size), dtype=np.float32)
    # each stamp's canvas (3, size, size) when it needs one: a (B, 3, size, size) block would be
    # fresh memory (page faults) on every call
    canvas: dict[int, torch.Tensor] = {}

    def canvas_of(b: int) -> torch.Tensor:
        if b not in canvas:
            canvas[b] = torch.zeros((3, size, size), dtype=torch.float32)
        return canvas[b]

    c = (size - 1) / 2
    # Sersic light of every extended source, batched over the whole call
    owner = np.concatenate([np.full(len(s.src_x), b) for b, s in enumerate(specs)])
    cat = {k: np.concatenate([getattr(s, k) for s in specs]) for k in ("src_x", "src_y", "src_r_half", "src_n",
                                                                        "src_e1", "src_e2")}
    flux = torch.as_tensor(np.concatenate([s.src_flux.reshape(-1, 3) for s in specs]), dtype=torch.float32)
    # a stamp whose only light is one Sersic source is flux (3,) x one unit image: its image
    # is transformed once instead of once per band (``convolve_stamp``'s band_flux)
    single = [len(s.src_x) == 1 and len(s.point_x) == 0 and s.morphology not in MORPHOLOGIES and s.arc is None
              for s in specs]
    unit: dict = {}
    one = torch.ones(1, dtype=torch.float32)
    for s, img, row0, col0 in render_sersic_windows(cat["src_x"], cat["src_y"], cat["src_r_half"], cat["src_n"],
                                                    cat["src_e1"], cat["src_e2"], size, pixscale):
        b = int(owner[s])
        if single[b]:
            unit[b] = (torch.zeros((1, size, size), dtype=torch.float32), flux[s])
            _add_window(unit[b][0], img, row0, col0, one)
        else:
            _add_window(canvas_of(b), img, row0, col0, flux[s])
    rngs = [stamp_rng(config.seed, s.galaxy_id) for s in specs]
    for b, s in enumerate(specs):
        for x, y, f in zip(s.point_x, s.point_y, s.point_flux):
            j, i = int(round(c - x / pixscale)), int(round(c + y / pixscale))
            if 0 <= i < size and 0 <= j < size:
                canvas_of(b).numpy()[:, i, j] += np.asarray(f, dtype=np.float32)  # rounded to float32, then added
        extra = _morphology(s.morphology, rngs[b], s.target_shape_r, s.target_flux, size, pixscale)
        if extra is not None:
            canvas_of(b).add_(extra)
        if s.arc is not None:
            canvas_of(b).add_(render_arc(s.arc, size, pixscale).to(torch.float32))
    kernels, sigma_sky = stamp_psfs(np.stack([s.fwhm_arcsec for s in specs]), np.stack([s.psfdepth for s in specs]),
                                    pixscale)
    out = np.empty((B, 3, size, size), dtype=np.float32)
    buffers: dict = {}
    corr_kernel = None
    if noise and config.noise_block_factor != 1.0:
        k = torch.as_tensor(correlation_kernel(config.noise_block_factor), dtype=torch.float32)
        corr_kernel = k.expand(3, 1, *k.shape).contiguous()
    scale, var = noise_terms(np.stack(sigma_sky), pixscale)
    # per-stamp work arrays, reused across the stamps (fewer fresh allocations)
    sigma, unit_draw = torch.empty((3, size, size)), torch.empty((3, size, size))
    for b, s in enumerate(specs):
        # the stamp's row of ``out`` (contiguous) receives the convolved image; noise and artefacts
        # are added there
        img = torch.from_numpy(out[b])
        img.copy_(convolve_stamp(unit[b][0], kernels[b], buffers, unit[b][1]) if b in unit else
                  convolve_stamp(canvas_of(b), kernels[b], buffers))
        if noise:
            rng = rngs[b]
            noise_sigma(img, scale[b], var[b], out=sigma)
            spike = rng.random() < config.spike_rate
            spike_at = (int(rng.integers(0, size)), np.float32(rng.uniform(0.5, 5.0)),
                        np.float32(rng.uniform(0.5, 5.0))) if spike else None
            patch_at = tuple(int(v) for v in rng.integers(20, size - 26, 2)) if rng.random() < config.nan_patch_rate \
                else None
            missing = int(rng.integers(0, 3)) if rng.random() < config.missing_band_rate else None
            gen = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
            if corr_kernel is None:
                img.addcmul_(torch.randn((3, size, size), generator=gen, dtype=torch.float32, out=unit_draw), sigma)
            else:  # white noise over a margin of the kernel's half-width, correlated, cut to the stamp
                h = corr_kernel.shape[-1] // 2
                white = torch.randn((1, 3, size + 2 * h, size + 2 * h), generator=gen, dtype=torch.float32)
                img.addcmul_(torch.nn.functional.conv2d(white, corr_kernel, groups=3)[0], sigma)
        a = out[b]
        if noise:
            if spike_at is not None:
                i, a1, a2 = spike_at
                a[:, i, :] += a1
                a[:, :, min(size - 1, i + 3)] += a2
            if patch_at is not None:
                i, j = patch_at
                a[:, i:i + 6, j:j + 6] = np.nan
            if missing is not None:
                a[missing] = np.nan
    return out


class MockSweepImager:
    """Stamps for the rows of one mock sweep (neighbours from the same sweep)."""

    def __init__(self, sweep_rows: pd.DataFrame, truth: pd.DataFrame, config: MockSkyConfig, size: int = STAMP_PIX):
        from scipy.spatial import cKDTree

        from lensaudit.sampling.geometry import unit_vectors

        ok = np.isfinite(sweep_rows["ra"].to_numpy()) & np.isfinite(sweep_rows["dec"].to_numpy())
        self.rows = sweep_rows[ok].reset_index(drop=True)
        self.truth = truth.set_index("galaxy_id")
        self.config, self.size = config, size
        self._tree = cKDTree(unit_vectors(self.rows["ra"], self.rows["dec"]))
        self._pos = {g: i for i, g in enumerate(self.rows["galaxy_id"])}
        self._reach = math.radians(size * PIXSCALE_ARCSEC * 0.75 / 3600.0) * 2  # chord, generous
        r = self.rows
        self._col = {k: r[k].to_numpy(dtype=np.float64) for k in (
            "ra", "dec", "shape_r", "shape_e1", "shape_e2", "sersic", "flux_g", "flux_r", "flux_z",
            "psfsize_g", "psfsize_r", "psfsize_z", "psfdepth_g", "psfdepth_r", "psfdepth_z")}
        types = r["type"].astype(str).str.strip().to_numpy()
        self._is_point = types == "PSF"
        sers = self._col["sersic"]
        self._n = np.array([TYPE_SERSIC_N.get(t, s if s > 0 else 1.0) for t, s in zip(types, sers)])
        self._flux = np.clip(np.stack([self._col["flux_g"], self._col["flux_r"], self._col["flux_z"]], 1), 0, None)
        e1, e2 = self._col["shape_e1"], self._col["shape_e2"]
        e = np.hypot(e1, e2)
        scale = np.where(e > ELLIPTICITY_MAX, ELLIPTICITY_MAX / np.maximum(e, 1e-12), 1.0)
        self._e1, self._e2 = e1 * scale, e2 * scale
        self._r_half = np.maximum(self._col["shape_r"], R_HALF_MIN_ARCSEC)
        self._gid = r["galaxy_id"].to_numpy()
        # what a stamp needs of the truth table: confuser morphologies and true lenses' arcs
        self._morph, self._arc = {}, {}
        for t in truth.itertuples(index=False):
            if t.galaxy_id not in self._pos:
                continue
            if isinstance(t.morphology, str) and t.morphology:
                self._morph[t.galaxy_id] = t.morphology
            if t.role == "lens" and bool(t.is_true_lens):
                k = self._pos[t.galaxy_id]
                self._arc[t.galaxy_id] = arc_parameters(self._col["shape_e1"][k], self._col["shape_e2"][k], t)

    def has(self, galaxy_id) -> bool:
        return galaxy_id in self._pos

    def _index(self, galaxy_id) -> int:
        if galaxy_id not in self._pos:
            raise KeyError(f"{galaxy_id} is not a row of this mock sweep")
        return self._pos[galaxy_id]

    def inputs(self, target):
        """(target row, neighbours DataFrame, truth row or None) of a target, for the reference renderer."""
        from lensaudit.sampling.geometry import unit_vectors

        k = self._index(target.galaxy_id)
        row = next(self.rows.iloc[[k]].itertuples(index=False))
        idx = self._tree.query_ball_point(unit_vectors(row.ra, row.dec), r=self._reach)
        truth_row = self.truth.loc[row.galaxy_id] if row.galaxy_id in self.truth.index else None
        return row, self.rows.iloc[sorted(idx)], truth_row

    def specs(self, galaxy_ids) -> list[StampSpec]:
        from lensaudit.sampling.geometry import unit_vectors

        ks = np.array([self._index(g) for g in galaxy_ids], dtype=np.int64)
        col = self._col
        near = self._tree.query_ball_point(unit_vectors(col["ra"][ks], col["dec"][ks]), r=self._reach) if len(ks) else []
        out = []
        for k, idx in zip(ks, near):
            idx = np.sort(np.asarray(idx, dtype=np.int64))
            cosd = math.cos(math.radians(col["dec"][k]))
            x = (col["ra"][idx] - col["ra"][k]) * cosd * 3600
            y = (col["dec"][idx] - col["dec"][k]) * 3600
            pt = self._is_point[idx]
            ext = idx[~pt]
            gid = self._gid[k]
            morph, arc = self._morph.get(gid, ""), self._arc.get(gid)
            out.append(StampSpec(
                galaxy_id=gid, fwhm_arcsec=np.array([col["psfsize_g"][k], col["psfsize_r"][k], col["psfsize_z"][k]]),
                psfdepth=np.array([col["psfdepth_g"][k], col["psfdepth_r"][k], col["psfdepth_z"][k]]),
                src_x=x[~pt], src_y=y[~pt], src_flux=self._flux[ext], src_r_half=self._r_half[ext], src_n=self._n[ext],
                src_e1=self._e1[ext], src_e2=self._e2[ext], point_x=x[pt], point_y=y[pt], point_flux=self._flux[idx[pt]],
                morphology=morph, target_flux=np.array([col["flux_g"][k], col["flux_r"][k], col["flux_z"][k]]),
                target_shape_r=float(col["shape_r"][k]), arc=arc))
        return out

    def stamps(self, galaxy_ids, noise: bool = True) -> np.ndarray:
        """(B, 3, size, size) float32 stamps of the rows with these galaxy_ids (KeyError
        naming the first that is not a row of this sweep)."""
        return render_stamps(self.specs(list(galaxy_ids)), self.config, self.size, noise=noise)

    def stamp(self, target) -> np.ndarray:
        """Stamp of the sweep row whose galaxy_id is ``target.galaxy_id`` (any row-like)."""
        return self.stamps([target.galaxy_id])[0]

    def stamp_reference(self, target) -> np.ndarray:
        """The same stamp from the reference renderer (``lensaudit.mock.reference``)."""
        from lensaudit.mock.reference import render_stamp_reference

        row, neighbours, truth_row = self.inputs(target)
        return render_stamp_reference(row, neighbours, truth_row, self.config, self.size)
