"""The injection-realism comparison (asset ``injection_realism``).

Inject the default prior (``lensaudit.injection.prior``) into real non-lens hosts (test-
split negatives with good cutouts, chosen by sha256("{galaxy_id}:{seed}") order), with the
host's own PSF FWHM and depth-matched arc noise, and measure the same statistics
(``lensaudit.injection.realism``) on the injected stamps and on the real lenses' cutouts
of the requested tiers: unclipped annulus S/N (N(0, 1) on noise) and arc-only colours (the
injected arc's share of the host-subtracted annulus flux for injections; the host-subtracted
annulus flux with its error for real lenses), and each injection's matched-filter S/N
(``arc_snr_matched``: which injections are observable, the ones compared with the known
lenses, a discovered sample).  Also keeps, per band, the noise the injection added inside each arc's
footprint in units of a real pixel's Poisson sigma (``arc_noise_residuals``), for the
arc-noise gate.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from lensaudit.injection.realism import (add_arc_noise, arc_colours, arc_noise_residuals, arc_stats,
                                         sigma_pix_from_depth)
from lensaudit.survey.instrument import BANDS, MOFFAT_BETA, PIXSCALE_ARCSEC

NOISE_PIXELS_PER_STAMP = 200
NOISE_COLUMNS = ["galaxy_id", "band", "value"]


def _order(ids, seed):
    return np.argsort([hashlib.sha256(f"{g}:{seed}".encode()).hexdigest() for g in ids], kind="stable")


def stats_frame(stamps: np.ndarray, hosts: np.ndarray | None = None) -> pd.DataFrame:
    """Per-stamp measured S/N, fluxes and arc-only colours of (N, 3, H, W) stamps
    [nmgy/pixel]; the colours come from the point-symmetric host subtraction of
    :func:`lensaudit.injection.realism.arc_colours`, identical for injected stamps and real
    lenses (``hosts`` is accepted for the callers' symmetry and not used)."""
    n = len(stamps)
    if n == 0:
        return pd.DataFrame(columns=_STATS_COLUMNS)
    st = arc_stats(stamps)
    out = {}
    for i, b in enumerate(BANDS):
        out[f"snr_{b}"] = st["snr"][:, i]
    out["snr_combined"] = st["snr_combined"]
    for i, b in enumerate(BANDS):
        out[f"flux_{b}_nmgy"] = st["flux_nmgy"][:, i]
        out[f"flux_err_{b}_nmgy"] = st["flux_err_nmgy"][:, i]
    col = arc_colours(stamps)  # the same estimator on injected stamps and real lenses
    for i, b in enumerate(BANDS):
        out[f"arc_flux_{b}_nmgy"] = col["arc_flux_nmgy"][:, i]
    out.update({k: col[k] for k in ("colour_g_r", "colour_r_z", "colour_g_r_err", "colour_r_z_err")})
    return pd.DataFrame(out)[_STATS_COLUMNS]


_STATS_COLUMNS = ([f"snr_{b}" for b in BANDS] + ["snr_combined"]
                  + [f"{k}_{b}_nmgy" for b in BANDS for k in ("flux", "flux_err")]
                  + [f"arc_flux_{b}_nmgy" for b in BANDS]
                  + ["colour_g_r", "colour_r_z", "colour_g_r_err", "colour_r_z_err"])


def noise_sample(ids, injected: np.ndarray, hosts: np.ndarray, models: np.ndarray,
                 per_stamp: int = NOISE_PIXELS_PER_STAMP) -> pd.DataFrame:
    """Long table (galaxy_id, band, value) of the added noise inside each arc footprint in
    units of a real pixel's Poisson sigma (``arc_noise_residuals``), at most ``per_stamp``
    pixels per stamp and band (a deterministic stride)."""
    frames = []
    for g, inj, h, m in zip(ids, injected, hosts, models):
        for b, v in zip(BANDS, arc_noise_residuals(inj, h, m)):
            if len(v):
                v = v[::max(1, int(np.ceil(len(v) / per_stamp)))]
                frames.append(pd.DataFrame({"galaxy_id": g, "band": b, "value": v}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        {"galaxy_id": pd.Series(dtype=str), "band": pd.Series(dtype=str), "value": pd.Series(dtype=float)})


def matched_arc_snr(arcs: np.ndarray, hosts: np.ndarray) -> np.ndarray:
    """(N,) combined matched-filter S/N of the noise-free arcs (N, 3, H, W) [nmgy/pixel] against
    their hosts' own noise and correlated-noise factor: the observability statistic of the
    selection function (``lensaudit.injection.visibility``), which picks the injections
    the realism gates compare with the known lenses."""
    import torch

    from lensaudit.injection.annulus import outer_sigma
    from lensaudit.injection.visibility import combined, matched_snr, noise_correlation_factor

    h = torch.from_numpy(np.asarray(hosts, dtype=np.float64))
    sigma = outer_sigma(h)
    corr = noise_correlation_factor(h, sigma=sigma)
    return combined(matched_snr(torch.from_numpy(np.asarray(arcs, dtype=np.float64)), sigma, corr).numpy())


def run_realism(index: pd.DataFrame, manifest: pd.DataFrame, reader, seed: int, n_inject: int,
                real_tiers: tuple[str, ...], device: str = "cpu") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, noise) -- records: one row per injection (kind 'injected', with all
    parameters and the magnification) and per real lens (kind 'real'); noise: the arc-noise
    sample of :func:`noise_sample`."""
    import torch

    from lensaudit.injection.prior import injection_seed, prior_for_hosts
    from lensaudit.injection.psf import kernel_half_width, moffat_kernels
    from lensaudit.injection.render import render_arcs

    cols = ["galaxy_id", "tier", "psfsize_g", "psfsize_r", "psfsize_z", "psfdepth_g", "psfdepth_r", "psfdepth_z"]
    good = index[index["cutout_ok"]].merge(manifest[cols], on="galaxy_id", how="inner")
    hosts = good[(good["split"] == "test") & (good["label"] == 0)]
    hosts = hosts.iloc[_order(hosts["galaxy_id"], seed)[:n_inject]].reset_index(drop=True)
    real = good[(good["label"] == 1) & good["tier"].isin(real_tiers)].sort_values("galaxy_id").reset_index(drop=True)
    if hosts.empty:
        raise ValueError("no test-split negative with a good cutout to inject into")
    host_stamps = reader.read(hosts).astype(np.float64)
    params = prior_for_hosts(hosts, seed)
    res = render_arcs(params, dtype=torch.float32, device=device)
    arcs = res.images.cpu().numpy().astype(np.float64)
    fwhm = torch.tensor(np.stack([hosts[f"psfsize_{b}"] for b in BANDS], axis=1), dtype=torch.float64)
    kern = moffat_kernels(fwhm, torch.full_like(fwhm, MOFFAT_BETA), PIXSCALE_ARCSEC,
                         kernel_half_width(float(fwhm.max()), PIXSCALE_ARCSEC)).numpy()
    depth = np.stack([hosts[f"psfdepth_{b}"] for b in BANDS], axis=1)
    injected = np.stack([h + add_arc_noise(a, sigma_pix_from_depth(d, k),
                                           np.random.default_rng(injection_seed(seed + 1, g)))
                         for h, a, d, k, g in zip(host_stamps, arcs, depth, kern, hosts["galaxy_id"])])
    inj = pd.concat([hosts[["galaxy_id"]], pd.DataFrame(params).drop(columns=["supersample"]),
                     stats_frame(injected, host_stamps)], axis=1)
    inj["magnification"] = res.magnification.cpu().numpy()
    inj["arc_snr_matched"] = matched_arc_snr(arcs, host_stamps)
    inj.insert(0, "kind", "injected")
    real_stats = pd.concat([real[["galaxy_id"]], stats_frame(reader.read(real).astype(np.float64))], axis=1) \
        if len(real) else pd.DataFrame(columns=["galaxy_id"])
    real_stats.insert(0, "kind", "real")
    records = pd.concat([inj, real_stats], ignore_index=True)
    return records, noise_sample(hosts["galaxy_id"], injected, host_stamps, arcs)
