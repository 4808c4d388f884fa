"""The injection-realism comparison (asset ``injection_realism``).

Inject the default prior (``lensaudit.injection.prior``) into real non-lens hosts (test-
split negatives with good cutouts, chosen by sha256("{galaxy_id}:{seed}") order), with the
host's own PSF FWHM and depth-matched arc noise, and measure the same statistics
(``lensaudit.injection.realism``) on the injected stamps and on the real lenses' cutouts
of the requested tiers.  Also keeps a deterministic sample of outer-ring pixels of the
injected and the plain hosts for the background KS test.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from lensaudit.injection.realism import add_arc_noise, annulus_stats, outer_pixels, sigma_pix_from_depth

BG_PIXELS_PER_STAMP = 200
BG_MAX_STAMPS = 400


def _order(ids, seed):
    return np.argsort([hashlib.sha256(f"{g}:{seed}".encode()).hexdigest() for g in ids], kind="stable")


def _stats_frame(stamps: np.ndarray) -> pd.DataFrame:
    rows = []
    for s in stamps:
        st = annulus_stats(s)
        rows.append({"snr_g": st["snr"][0], "snr_r": st["snr"][1], "snr_z": st["snr"][2],
                     "snr_combined": st["snr_combined"], "colour_g_r": st["colour_g_r"], "colour_r_z": st["colour_r_z"]})
    return pd.DataFrame(rows)


def _bg_sample(stamps: np.ndarray, kind: str) -> pd.DataFrame:
    frames = []
    for s in stamps[:BG_MAX_STAMPS]:
        px = outer_pixels(s)
        step = max(1, px.shape[1] // BG_PIXELS_PER_STAMP)
        for b, band in enumerate("grz"):
            v = px[b, ::step]
            frames.append(pd.DataFrame({"kind": kind, "band": band, "value": v[np.isfinite(v)]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["kind", "band", "value"])


def run_realism(index: pd.DataFrame, manifest: pd.DataFrame, reader, seed: int, n_inject: int,
                real_tiers: tuple[str, ...], device: str = "cpu") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, background) — records: one row per injection (kind 'injected', with all
    parameters and the magnification) and per real lens (kind 'real')."""
    import torch

    from lensaudit.injection.prior import prior_for_hosts
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
    fwhm = torch.tensor(np.stack([hosts[f"psfsize_{b}"] for b in "grz"], axis=1), dtype=torch.float64)
    kern = moffat_kernels(fwhm, torch.full_like(fwhm, 3.5), 0.262, kernel_half_width(float(fwhm.max()), 0.262)).numpy()
    depth = np.stack([hosts[f"psfdepth_{b}"] for b in "grz"], axis=1)
    from lensaudit.injection.prior import injection_seed

    injected = np.stack([h + add_arc_noise(a, sigma_pix_from_depth(d, k),
                                           np.random.default_rng(injection_seed(seed + 1, g)))
                         for h, a, d, k, g in zip(host_stamps, arcs, depth, kern, hosts["galaxy_id"])])
    inj = pd.concat([hosts[["galaxy_id"]], pd.DataFrame(params).drop(columns=["supersample"]),
                     _stats_frame(injected)], axis=1)
    inj["magnification"] = res.magnification.cpu().numpy()
    inj.insert(0, "kind", "injected")
    real_stats = pd.concat([real[["galaxy_id"]], _stats_frame(reader.read(real).astype(np.float64))], axis=1) \
        if len(real) else pd.DataFrame(columns=["galaxy_id"])
    real_stats.insert(0, "kind", "real")
    records = pd.concat([inj, real_stats], ignore_index=True)
    background = pd.concat([_bg_sample(injected, "injected"), _bg_sample(host_stamps, "plain")], ignore_index=True)
    return records, background
