"""The mock sky's first stamp renderer, kept as the reference of the batched one.

Per stamp: numpy Sersic light of every neighbour on a 2x supersampled (2N)^2 grid, the
confuser morphology, the lensed arc of a true lens with lenstronomy (SIE + shear, Sersic
source, evaluated at the sub-pixel centres), a scipy ``fftconvolve`` per band with the
Moffat kernel, sky noise plus the sources' Poisson-like noise (``add_arc_noise``) and the
artefacts.  About 90 stamps/s per core.  Used by the tests (arc flux parity, noise sigma)
and ``bench/bench_mock_render.py``; never on the production path
(``lensaudit.mock.render`` is).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import torch
from scipy.signal import fftconvolve

from lensaudit.mock.confusers import ring_draw
from lensaudit.injection.psf import kernel_half_width, moffat_kernels
from lensaudit.injection.realism import add_arc_noise, sigma_pix_from_depth
from lensaudit.injection.source import sersic_unit_amp
from lensaudit.mock.config import MockSkyConfig
from lensaudit.survey.instrument import BANDS, MOFFAT_BETA, PIXSCALE_ARCSEC, STAMP_PIX, lenstronomy_frame

SUPERSAMPLE = 2


def sersic_image(x, y, flux, r_half, n, e1, e2, cx, cy):
    """Pixel-integrated (supersampled) Sersic of total ``flux`` on a grid of sub-pixel
    coordinates x, y (arcsec, shape (H*s, W*s)); returns flux per sub-pixel."""
    r_half = max(r_half, 0.05)
    e = math.hypot(e1, e2)
    if e > 0.9:
        e1, e2 = e1 * 0.9 / e, e2 * 0.9 / e
    norm = math.sqrt(max(1 - e1 * e1 - e2 * e2, 1e-6))
    dx, dy = x - cx, y - cy
    xp = ((1 - e1) * dx - e2 * dy) / norm
    yp = (-e2 * dx + (1 + e1) * dy) / norm
    r = np.maximum(np.hypot(xp, yp), 1e-4)
    bn = max(1.9992 * n - 0.3271, 1e-5)
    amp = flux * sersic_unit_amp(r_half, n)
    return amp * np.exp(-bn * ((r / r_half) ** (1 / n) - 1)) * (PIXSCALE_ARCSEC / SUPERSAMPLE) ** 2


def lens_arc_lenstronomy(row, truth_row, n_sub: int, supersampling: int = 1) -> np.ndarray:
    """(3, n_sub, n_sub) lensed arc (flux per sub-pixel) with lenstronomy; ``supersampling`` is
    lenstronomy's own factor inside each of the n_sub^2 cells (1 in the stamps, more in the
    parity tests, where a cuspy source needs it)."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    data = ImageData(image_data=np.zeros((n_sub, n_sub)),
                     **lenstronomy_frame(n_sub, PIXSCALE_ARCSEC / SUPERSAMPLE, east_left=True))
    e1, e2 = float(np.clip(row.shape_e1, -0.3, 0.3)), float(np.clip(row.shape_e2, -0.3, 0.3))
    t = truth_row
    kw_lens = [{"theta_E": float(t.theta_e_arcsec), "e1": e1, "e2": e2, "center_x": 0.0, "center_y": 0.0},
               {"gamma1": float(t.gamma1), "gamma2": float(t.gamma2)}]
    r_src, n_src = float(t.src_r_sersic_arcsec), float(t.src_n_sersic)
    unit = sersic_unit_amp(r_src, n_src)
    mags = {"r": float(truth_row.src_mag_r)}
    mags["g"] = mags["r"] + float(truth_row.src_g_r)
    mags["z"] = mags["r"] - float(truth_row.src_r_z)
    model = ImageModel(data, PSF(psf_type="NONE"), lens_model_class=LensModel(["SIE", "SHEAR"]),
                       source_model_class=LightModel(["SERSIC_ELLIPSE"]), kwargs_numerics={"supersampling_factor": int(supersampling)})
    out = []
    for b in BANDS:
        amp = unit * 10 ** (-0.4 * (mags[b] - 22.5))
        kw_src = [{"amp": amp, "R_sersic": r_src, "n_sersic": n_src, "e1": float(t.src_e1), "e2": float(t.src_e2),
                   "center_x": float(t.src_x_arcsec), "center_y": float(t.src_y_arcsec)}]
        out.append(model.image(kwargs_lens=kw_lens, kwargs_source=kw_src))
    return np.stack(out)


def _morphology(kind: str, rng, x, y, row, flux: np.ndarray) -> np.ndarray:
    """Extra light (3, ...) of a confuser's morphology, flux per sub-pixel."""
    out = np.zeros((3,) + x.shape)
    r = np.hypot(x, y)
    rh = max(float(row.shape_r), 0.5)
    if kind == "ring":
        r0, w, ring_flux = ring_draw(rng, flux)
        prof = np.exp(-0.5 * ((r - r0) / w) ** 2)
    elif kind == "spiral":
        th = np.arctan2(y, x)
        arms = np.cos(2 * (th - np.log(np.maximum(r, 0.1)) / 0.35)) ** 8 * np.exp(-r / (1.5 * rh)) * (r > 0.6 * rh)
        prof, frac = arms, np.array([0.25, 0.2, 0.12])
    elif kind == "blue_clumpy":
        prof = np.zeros(x.shape)
        for _ in range(int(rng.integers(3, 6))):
            a, d = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.5) * rh
            prof += np.exp(-0.5 * (((x - d * np.cos(a)) ** 2 + (y - d * np.sin(a)) ** 2) / 0.15**2))
        frac = np.array([0.4, 0.25, 0.12])
    else:
        return out
    s = prof.sum()
    if s > 0:
        band_flux = ring_flux if kind == "ring" else frac * np.clip(flux, 0, None)
        out += (prof / s)[None] * band_flux[:, None, None]
    return out


def render_stamp_reference(target, neighbours: pd.DataFrame, truth_row, config: MockSkyConfig, size: int = STAMP_PIX) -> np.ndarray:
    """(3, size, size) float32 stamp of ``target`` (a sweep row) and its ``neighbours``."""
    n_sub = size * SUPERSAMPLE
    ax = (np.arange(n_sub) - (n_sub - 1) / 2) * (PIXSCALE_ARCSEC / SUPERSAMPLE)
    x, y = np.meshgrid(-ax, ax)  # east left: RA increases to the left; rows = north
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, zlib.crc32(str(target.galaxy_id).encode())]))
    sub = np.zeros((3, n_sub, n_sub))
    point = np.zeros((3, size, size))
    cosd = math.cos(math.radians(target.dec))
    for nb in neighbours.itertuples(index=False):
        cx = (nb.ra - target.ra) * cosd * 3600
        cy = (nb.dec - target.dec) * 3600
        flux = np.array([nb.flux_g, nb.flux_r, nb.flux_z], dtype=float)
        if nb.type == "PSF":
            j = int(round((size - 1) / 2 - cx / PIXSCALE_ARCSEC))  # x flipped: east left
            i = int(round((size - 1) / 2 + cy / PIXSCALE_ARCSEC))
            if 0 <= i < size and 0 <= j < size:
                point[:, i, j] += np.clip(flux, 0, None)
            continue
        n = {"DEV": 4.0, "EXP": 1.0, "REX": 1.0}.get(nb.type, float(nb.sersic) if nb.sersic > 0 else 1.0)
        unit = sersic_image(x, y, 1.0, float(nb.shape_r), n, float(nb.shape_e1), float(nb.shape_e2), cx, cy)
        sub += np.clip(flux, 0, None)[:, None, None] * unit[None]
    flux_t = np.array([target.flux_g, target.flux_r, target.flux_z], dtype=float)
    if truth_row is not None:
        sub += _morphology(str(truth_row.morphology), rng, x, y, target, flux_t)
        if bool(truth_row.role == "lens") and bool(truth_row.is_true_lens):
            sub += lens_arc_lenstronomy(target, truth_row, n_sub)
    img = sub.reshape(3, size, SUPERSAMPLE, size, SUPERSAMPLE).sum(axis=(2, 4)) + point
    fwhm = np.array([target.psfsize_g, target.psfsize_r, target.psfsize_z], dtype=float)
    half = kernel_half_width(float(fwhm.max()), PIXSCALE_ARCSEC)
    f = torch.as_tensor(fwhm, dtype=torch.float64)
    kernels = moffat_kernels(f, torch.full_like(f, MOFFAT_BETA), PIXSCALE_ARCSEC, half).numpy()
    img = np.stack([fftconvolve(img[b], kernels[b], mode="same") for b in range(3)])
    depth = np.array([target.psfdepth_g, target.psfdepth_r, target.psfdepth_z], dtype=float)
    sigma = sigma_pix_from_depth(np.where(depth > 0, depth, 1e-3), kernels)
    img = add_arc_noise(img, sigma, rng) + rng.normal(size=img.shape) * sigma[:, None, None]
    img = img.astype(np.float32)
    if rng.random() < config.spike_rate:
        i = int(rng.integers(0, size))
        img[:, i, :] += np.float32(rng.uniform(0.5, 5.0))
        img[:, :, min(size - 1, i + 3)] += np.float32(rng.uniform(0.5, 5.0))
    if rng.random() < config.nan_patch_rate:
        i, j = rng.integers(20, size - 26, 2)
        img[:, i:i + 6, j:j + 6] = np.nan
    if rng.random() < config.missing_band_rate:
        img[int(rng.integers(0, 3))] = np.nan
    return img
