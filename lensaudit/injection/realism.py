"""Realism diagnostics of injected arcs vs real lenses (DESIGN s3 "Realism gates").

Every statistic is measured the same way on an injected stamp (host + arc) and on a
real lens cutout, from the image alone:
- arc annulus S/N, *integrated* (reference/002 s4.5), per band and combined: the
  excess over the azimuthal median profile (which removes a round lens galaxy), summed
  over the annulus r_in <= r < r_out px, divided by sigma_pix sqrt(N_pix); sigma_pix is
  1.4826 MAD of the outer ring (r >= 35 px).  Combined = sqrt(sum_b S/N_b^2) over bands
  with positive excess;
- annulus colours g-r and r-z of that excess (AB, NaN when a flux is not positive);
- background: pixels of the outer ring, injected vs plain host, two-sample KS per band.
Arrays are (3, H, W) g, r, z in nmgy per pixel.
"""

from __future__ import annotations

import numpy as np

from lensaudit.stamps import azimuthal_median, radius_map

ANNULUS_PX = (4.0, 16.0)
OUTER_RING_PX = 35.0
# typical DECam sky surface brightness, AB mag / arcsec^2 (DECaLS DR10 medians), used to
# turn the host depth into the Poisson variance of the added arc
SKY_MAG_PER_ARCSEC2 = {"g": 22.0, "r": 20.9, "z": 18.5}


def sigma_pix_outer(image: np.ndarray, r: np.ndarray, r_min: float = OUTER_RING_PX) -> np.ndarray:
    out = []
    for b in range(image.shape[0]):
        v = image[b][(r >= r_min) & np.isfinite(image[b])]
        out.append(1.4826 * np.median(np.abs(v - np.median(v))) if len(v) else np.nan)
    return np.asarray(out)


def annulus_stats(image: np.ndarray, annulus_px=ANNULUS_PX) -> dict:
    """snr (3,), snr_combined, colour_g_r, colour_r_z for one (3, H, W) stamp."""
    r = radius_map(image.shape[-1])
    resid = image - azimuthal_median(image, r)
    ann = (r >= annulus_px[0]) & (r < annulus_px[1])
    sigma = sigma_pix_outer(image, r)
    n = int(ann.sum())
    flux = np.array([np.nansum(np.clip(resid[b][ann], 0, None)) for b in range(3)])
    snr = flux / (sigma * np.sqrt(n))
    with np.errstate(divide="ignore", invalid="ignore"):
        mags = np.where(flux > 0, 22.5 - 2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)
    return {"snr": snr, "snr_combined": float(np.sqrt(np.nansum(np.where(snr > 0, snr, 0) ** 2))),
            "colour_g_r": float(mags[0] - mags[1]), "colour_r_z": float(mags[1] - mags[2])}


def outer_pixels(image: np.ndarray, r_min: float = OUTER_RING_PX) -> np.ndarray:
    r = radius_map(image.shape[-1])
    return image[:, r >= r_min]


def sigma_pix_from_depth(psfdepth_ivar: np.ndarray, psf_kernels: np.ndarray) -> np.ndarray:
    """Per-pixel sky sigma (nmgy) implied by a PSF depth (1/nmgy^2): an optimally weighted
    point-source flux has var = sigma_pix^2 / sum(P^2), so sigma_pix = sqrt(sum(P^2) / depth)."""
    p2 = (np.asarray(psf_kernels, dtype=np.float64) ** 2).sum(axis=(-2, -1))
    return np.sqrt(p2 / np.asarray(psfdepth_ivar, dtype=np.float64))


def sky_nmgy_per_pixel(pixscale: float = 0.262) -> np.ndarray:
    """(3,) g, r, z sky per pixel [nmgy] from SKY_MAG_PER_ARCSEC2."""
    return np.array([10 ** (-0.4 * (SKY_MAG_PER_ARCSEC2[b] - 22.5)) * pixscale**2 for b in "grz"])


def arc_poisson_sigma(arc: np.ndarray, sigma_pix: np.ndarray, pixscale: float = 0.262) -> np.ndarray:
    """Per-pixel sigma of the arc's own Poisson noise (nmgy): in a sky-limited image
    sigma_pix^2 = sky / g_eff, so the arc adds var = arc / g_eff = arc sigma_pix^2 / sky,
    with the sky per pixel from SKY_MAG_PER_ARCSEC2."""
    sky = sky_nmgy_per_pixel(pixscale)
    s = np.asarray(sigma_pix, dtype=np.float64).reshape(-1, 1, 1)
    return np.sqrt(np.clip(arc, 0, None) * s**2 / sky.reshape(-1, 1, 1))


def add_arc_noise(arc: np.ndarray, sigma_pix: np.ndarray, rng: np.random.Generator, pixscale: float = 0.262) -> np.ndarray:
    """The arc plus its Poisson-like noise (the host already carries the sky noise)."""
    return arc + rng.normal(size=arc.shape) * arc_poisson_sigma(arc, sigma_pix, pixscale)
