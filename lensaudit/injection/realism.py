"""Realism diagnostics of injected arcs vs real lenses (DESIGN s3 "Realism gates").

Arrays are (3, H, W) or (N, 3, H, W) g, r, z in nmgy per pixel.

Arc S/N (measured the same way on injected stamps and on real lens cutouts, from the image
alone).  Per band, the residual over the azimuthal (1-px ring) median, which removes a round
lens galaxy, is summed *without clipping* over the annulus 4 <= r < 16 px (complete rings)
-- ``lensaudit.injection.annulus.annulus_snr``, the one implementation of this sum --
and divided by its noise: sigma_pix sqrt(N_pix) c, with sigma_pix = 1.4826 MAD of the outer
ring (r >= 35 px) and c = :func:`null_scale`.  c is needed because subtracting a ring's own
median removes part of the ring's noise: for n pixels of white noise the ring sum of
(x - median) has variance ~ n sigma^2 (pi/2 - 1), not n sigma^2 (c ~ 0.76); c is measured
once per stamp size (seeded Monte Carlo per ring, cached), so the S/N of a
noise-only stamp is N(0, 1) (tested).  Combined S/N = sum_b S/N_b / sqrt(3): also N(0, 1) on
noise (the bands' noise is independent).  The clipped sum used before read S/N ~ 11 per band
on pure noise and could not tell "no arc" from "arc".
Blind spot (inherited from the ring median): a complete, round Einstein ring is removed
with the host; the statistic sees arcs (partial rings).  Coadd noise is correlated between
pixels, so on real images the S/N scale is only approximately N(0, 1); injected stamps and
real lenses are real cutouts measured identically, so the comparison is like for like.

Arc colours from arc-only flux (:func:`arc_colours`), measured the same way on injected
stamps and on real lenses: the host is removed by subtracting the stamp rotated by 180 deg
about its centre (a lens galaxy's light is point-symmetric, an arc is not), the arc
footprint is the set of annulus pixels (4 <= r < 16 px) where the band-combined residual
exceeds ``COLOUR_MASK_SIGMA`` (2) times its noise (sqrt(2) sigma_pix of the outer ring), and
each band's arc flux is the residual summed over that footprint, with error
sqrt(2 N_pix) sigma_pix.  Colours are AB: -2.5 log10(f_1 / f_2), NaN unless both fluxes are
positive; errors 1.0857 sqrt((e_1/f_1)^2 + (e_2/f_2)^2).  The ring-median residual is not
used for colours: a bright lens galaxy leaves a residual of its own colour in it (about
-1.5 % of its annulus flux when round, +7 % for axis ratio 0.7), which on the tiny mock
pulled real "arc" colours to the lens galaxies' (g-r 1.0 against 0.5 for the arcs).  One
estimator on both sides keeps what it cannot remove (PSF differences between bands, noise
peaks in the footprint) common to the injected and the real arcs; measured on the tiny
mock: injected g-r / r-z medians 0.60 / 0.62, real 0.66 / 0.59.

Noise of the injection (:func:`arc_noise_residuals`).  The injection adds the arc plus the
arc's own Poisson-like noise (the host already carries the sky noise).  Inside the arc
footprint (model >= FOOTPRINT_SIGMA x the host's measured sigma_pix), the residual
(injected - host - model) is divided by the Poisson sigma a real DR10 pixel of that arc
brightness carries, computed from the host cutout's *measured* pixel noise (outer-ring MAD
of the real, non-injected cutout) and the sky level: it must be N(0, 1).  No noise, noise of
the wrong size (e.g. from a wrong depth -> sigma conversion) or sky noise added twice all
move it away from N(0, 1).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lensaudit.injection.annulus import ANNULUS_PX, OUTER_RING_PX
from lensaudit.stamps import radius_map
from lensaudit.survey.instrument import AB_ZEROPOINT_NMGY, BANDS, PIXSCALE_ARCSEC, STAMP_PIX

# typical DECam sky surface brightness, AB mag / arcsec^2 (DECaLS DR10 medians), used to
# turn the host depth into the Poisson variance of the added arc
SKY_MAG_PER_ARCSEC2 = {"g": 22.0, "r": 20.9, "z": 18.5}
FOOTPRINT_SIGMA = 0.2  # arc footprint: noise-free model >= 0.2 x the host's sigma_pix
_NULL_DRAWS = 24000


def sigma_pix_outer(image: np.ndarray, r: np.ndarray | None = None, r_min: float = OUTER_RING_PX) -> np.ndarray:
    """(C,) per-pixel noise [nmgy] of a (C, H, W) image: 1.4826 MAD of the ring r >= r_min px."""
    if r is None:
        r = radius_map(image.shape[-1])
    out = []
    for b in range(image.shape[0]):
        v = image[b][(r >= r_min) & np.isfinite(image[b])]
        out.append(1.4826 * np.median(np.abs(v - np.median(v))) if len(v) else np.nan)
    return np.asarray(out)


@lru_cache(maxsize=4)
def null_scale(size: int = STAMP_PIX) -> float:
    """Standard deviation of (raw annulus sum) / (sigma_pix sqrt(N_pix)) on white noise for
    stamps of ``size`` px (dimensionless; ~0.74 for the 1-px ring median, see the module
    docstring).  The annulus is a union of complete 1-px rings, each with its own median,
    so the variance is the sum over rings of Var(sum_ring (x - median(x))); each term is
    measured by a seeded Monte Carlo of n_ring unit normals (numpy median semantics, as
    ``annulus_snr``), _NULL_DRAWS draws per ring (~0.5 % precision on the scale)."""
    r = radius_map(size)
    ring = np.floor(r).astype(np.int64)
    ann = (r >= ANNULUS_PX[0]) & (r < ANNULUS_PX[1])
    sizes = np.bincount(ring[ann])
    rng = np.random.default_rng(20260522)
    var = 0.0
    for n in sizes[sizes > 0]:
        x = rng.normal(size=(_NULL_DRAWS, int(n)))
        var += float(np.var((x - np.median(x, axis=1, keepdims=True)).sum(axis=1)))
    return float(np.sqrt(var / ann.sum()))


def _annulus_npix(size: int) -> int:
    r = radius_map(size)
    return int(((r >= ANNULUS_PX[0]) & (r < ANNULUS_PX[1])).sum())


def arc_stats(stamps: np.ndarray) -> dict[str, np.ndarray]:
    """Arc statistics of (N, 3, H, W) stamps [nmgy/pixel]:
    flux_nmgy (N, 3) host-subtracted annulus flux (unclipped), flux_err_nmgy (N, 3) its
    1-sigma noise, snr (N, 3) = flux / flux_err (N(0, 1) on noise), snr_combined (N,)
    = sum of the finite band S/N / sqrt(their number), colour_g_r, colour_r_z (N,) [AB mag]
    with colour_g_r_err, colour_r_z_err."""
    import torch

    from lensaudit.injection.annulus import annulus_snr, outer_sigma

    x = np.asarray(stamps, dtype=np.float64)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"stamps must be (N, 3, H, W), got {x.shape}")
    t = torch.from_numpy(x)
    npix = _annulus_npix(x.shape[-1])
    flux = annulus_snr(t, torch.ones(x.shape[0], 3, dtype=torch.float64)).numpy() * np.sqrt(npix)
    sigma = outer_sigma(t).numpy()
    err = sigma * np.sqrt(npix) * null_scale(x.shape[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(err > 0, flux / err, np.nan)
    fin = np.isfinite(snr)
    with np.errstate(invalid="ignore"):
        comb = np.where(fin.any(axis=1), np.nansum(snr, axis=1) / np.sqrt(fin.sum(axis=1).clip(1)), np.nan)
    out = {"flux_nmgy": flux, "flux_err_nmgy": err, "snr": snr, "snr_combined": comb}
    out.update(colours(flux, err))
    return out


def colours(flux: np.ndarray, err: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """AB colours g-r, r-z of (N, 3) fluxes [nmgy] (NaN unless both positive) and, when
    ``err`` (N, 3) is given, their 1-sigma errors [mag] (else 0)."""
    flux = np.asarray(flux, dtype=np.float64)
    err = np.zeros_like(flux) if err is None else np.asarray(err, dtype=np.float64)
    out = {}
    for name, i, j in (("colour_g_r", 0, 1), ("colour_r_z", 1, 2)):
        ok = (flux[:, i] > 0) & (flux[:, j] > 0)
        fi, fj = np.where(ok, flux[:, i], 1.0), np.where(ok, flux[:, j], 1.0)
        out[name] = np.where(ok, -2.5 * np.log10(fi / fj), np.nan)
        out[name + "_err"] = np.where(ok, 2.5 / np.log(10) * np.hypot(err[:, i] / fi, err[:, j] / fj), np.nan)
    return out


def annulus_stats(image: np.ndarray) -> dict:
    """:func:`arc_stats` of one (3, H, W) stamp: snr (3,), snr_combined, colour_g_r, colour_r_z."""
    s = arc_stats(np.asarray(image)[None])
    return {"snr": s["snr"][0], "snr_combined": float(s["snr_combined"][0]), "flux_nmgy": s["flux_nmgy"][0],
            "flux_err_nmgy": s["flux_err_nmgy"][0], "colour_g_r": float(s["colour_g_r"][0]),
            "colour_r_z": float(s["colour_r_z"][0])}


def model_arc_flux(arcs: np.ndarray) -> np.ndarray:
    """(N, 3) flux [nmgy] of noise-free arc models (N, 3, H, W) on an empty sky through the
    host-subtraction operator of :func:`arc_stats` (for tests and diagnostics: without noise
    the ring medians respond differently to an arc than with it, see the module docstring)."""
    import torch

    from lensaudit.injection.annulus import annulus_snr

    x = torch.from_numpy(np.asarray(arcs, dtype=np.float64))
    return annulus_snr(x, torch.ones(x.shape[0], x.shape[1], dtype=torch.float64)).numpy() * np.sqrt(
        _annulus_npix(x.shape[-1]))


def injected_arc_flux(injected_flux: np.ndarray, hosts: np.ndarray) -> np.ndarray:
    """(N, 3) arc-only flux [nmgy] of injections: the host-subtracted annulus flux of the
    injected stamps (``injected_flux``, from :func:`arc_stats`) minus that of the same
    hosts without the arc (``hosts`` (N, 3, H, W)).  The host's own residual and noise
    cancel; what remains is the injected arc as the operator sees it among the host's noise."""
    return np.asarray(injected_flux, dtype=np.float64) - model_arc_flux(hosts)


COLOUR_MASK_SIGMA = 2.0


def arc_colours(stamps: np.ndarray) -> dict[str, np.ndarray]:
    """Arc-only fluxes and colours of (N, 3, H, W) stamps [nmgy/pixel] by point-symmetric host
    subtraction (module docstring): arc_flux_nmgy (N, 3), arc_flux_err_nmgy (N, 3),
    footprint_npix (N,), colour_g_r, colour_r_z and their errors [AB mag]."""
    x = np.asarray(stamps, dtype=np.float64)
    r = radius_map(x.shape[-1])
    ann = (r >= ANNULUS_PX[0]) & (r < ANNULUS_PX[1])
    resid = x - x[:, :, ::-1, ::-1]
    sig = np.stack([sigma_pix_outer(s, r) for s in x]) * np.sqrt(2.0) if len(x) else np.zeros((0, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.nansum(resid / sig[:, :, None, None], axis=1) / np.sqrt(3.0)
    mask = (z > COLOUR_MASK_SIGMA) & ann[None]
    npix = mask.sum(axis=(1, 2))
    flux = np.nansum(resid * mask[:, None], axis=(2, 3))
    err = sig * np.sqrt(npix)[:, None]
    out = {"arc_flux_nmgy": flux, "arc_flux_err_nmgy": err, "footprint_npix": npix}
    out.update(colours(flux, err))
    return out


def outer_pixels(image: np.ndarray, r_min: float = OUTER_RING_PX) -> np.ndarray:
    r = radius_map(image.shape[-1])
    return image[:, r >= r_min]


def sigma_pix_from_depth(psfdepth_ivar: np.ndarray, psf_kernels: np.ndarray) -> np.ndarray:
    """Per-pixel sky sigma (nmgy) implied by a PSF depth (1/nmgy^2): an optimally weighted
    point-source flux has var = sigma_pix^2 / sum(P^2), so sigma_pix = sqrt(sum(P^2) / depth)."""
    p2 = (np.asarray(psf_kernels, dtype=np.float64) ** 2).sum(axis=(-2, -1))
    return np.sqrt(p2 / np.asarray(psfdepth_ivar, dtype=np.float64))


def sky_nmgy_per_pixel(pixscale: float = PIXSCALE_ARCSEC) -> np.ndarray:
    """(3,) g, r, z sky per pixel [nmgy] from SKY_MAG_PER_ARCSEC2."""
    return np.array([10 ** (-0.4 * (SKY_MAG_PER_ARCSEC2[b] - AB_ZEROPOINT_NMGY)) * pixscale**2 for b in BANDS])


def arc_poisson_sigma(arc: np.ndarray, sigma_pix: np.ndarray, pixscale: float = PIXSCALE_ARCSEC) -> np.ndarray:
    """Per-pixel sigma of the arc's own Poisson noise (nmgy): in a sky-limited image
    sigma_pix^2 = sky / g_eff, so the arc adds var = arc / g_eff = arc sigma_pix^2 / sky,
    with the sky per pixel from SKY_MAG_PER_ARCSEC2.  ``arc`` is the noise-free arc model (never a noisy
    image): its negative values, ringing of the PSF convolution, carry no Poisson variance (clipped to 0)."""
    sky = sky_nmgy_per_pixel(pixscale)
    s = np.asarray(sigma_pix, dtype=np.float64).reshape(-1, 1, 1)
    return np.sqrt(np.clip(arc, 0, None) * s**2 / sky.reshape(-1, 1, 1))


def add_arc_noise(arc: np.ndarray, sigma_pix: np.ndarray, rng: np.random.Generator, pixscale: float = PIXSCALE_ARCSEC) -> np.ndarray:
    """The arc plus its Poisson-like noise (the host already carries the sky noise)."""
    return arc + rng.normal(size=arc.shape) * arc_poisson_sigma(arc, sigma_pix, pixscale)


def arc_noise_residuals(injected: np.ndarray, host: np.ndarray, model: np.ndarray,
                        footprint_sigma: float = FOOTPRINT_SIGMA, pixscale: float = PIXSCALE_ARCSEC) -> list[np.ndarray]:
    """Per band, the noise the injection added inside the arc footprint, in units of the
    Poisson sigma of a real pixel of that arc brightness (N(0, 1) when the injection is
    right).  injected, host, model: (3, H, W) [nmgy/pixel]; the host's sigma_pix is its
    measured outer-ring MAD (real, non-injected pixels).  Returns 3 1-d arrays (possibly empty)."""
    host = np.asarray(host, dtype=np.float64)
    model = np.asarray(model, dtype=np.float64)
    sig_host = sigma_pix_outer(host)
    expected = arc_poisson_sigma(model, sig_host, pixscale)
    resid = np.asarray(injected, dtype=np.float64) - host - model
    out = []
    for b in range(3):
        foot = (model[b] >= footprint_sigma * sig_host[b]) & (expected[b] > 0) & np.isfinite(resid[b])
        out.append(resid[b][foot] / expected[b][foot])
    return out
