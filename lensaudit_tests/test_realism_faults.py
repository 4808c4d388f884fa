"""Planted faults for the blocking realism gates, end to end through ``run_realism``.

A tiny synthetic store: 40 test-split non-lens hosts (a round galaxy + white sky noise whose
sigma matches the hosts' psfdepth) and 40 "real" lenses, which are other hosts carrying the
very arcs (same prior draws) that the injection will render, with their noise; the known
(tier-A) ones are those a survey would have found (observable arcs), as the gates expect.
The healthy injection is then green on all eight gates; each planted fault (arc flux x0,
x1e-3, x1000; no arc noise; arc noise from a wrong depth) turns a blocking gate red.
"""

import numpy as np
import pandas as pd
import pytest

from lensaudit.gates.realism_gates import arc_noise_gates, colour_gates, observable_snr_gates
from lensaudit.injection.visibility import OBSERVABLE_MATCHED_SNR
from lensaudit.stamps import radius_map

N = 40
SIGMA = np.array([0.0005, 0.0007, 0.0017])  # sky sigma per pixel [nmgy], g r z: deep, so the prior's arcs are seen
FWHM = (1.4, 1.25, 1.15)
SEED = 5


def _gates(rec, noise):
    inj, real = rec[rec.kind == "injected"], rec[rec.kind == "real"]
    keys = ("colour_g_r", "colour_r_z", "colour_g_r_err", "colour_r_z_err", "snr_g", "snr_r", "snr_z")
    gates = observable_snr_gates(rec)
    gates += colour_gates({k: inj[k].to_numpy(float) for k in keys}, {k: real[k].to_numpy(float) for k in keys})
    gates += arc_noise_gates([noise.loc[noise.band == b, "value"].to_numpy(float) for b in "grz"])
    return {g.name: g for g in gates}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import torch

    from lensaudit.cutouts.store import CutoutReader, write_shard
    from lensaudit.injection.prior import prior_for_hosts
    from lensaudit.injection.psf import kernel_half_width, moffat_kernels
    from lensaudit.injection.realism import add_arc_noise
    from lensaudit.injection.realism_run import _order
    from lensaudit.injection.render import render_arcs

    root = tmp_path_factory.mktemp("realism_store")
    rng = np.random.default_rng(1)
    host_ids, lens_ids = [f"h{i:03d}" for i in range(N)], [f"L{i:03d}" for i in range(N)]
    r = radius_map(101)
    # a faint red round host (r ~ 22 mag), removed by the ring median; brighter hosts leave residuals
    # that bias the real side's arc colours (see lensaudit.injection.realism)
    galaxy = np.exp(-r / 3.0)[None] * np.array([0.01, 0.03, 0.06])[:, None, None]

    def sky(n):
        return galaxy[None] + rng.normal(size=(n, 3, 101, 101)) * SIGMA[None, :, None, None]

    fw = torch.tensor([FWHM], dtype=torch.float64)
    kern = moffat_kernels(fw, torch.full_like(fw, 3.5), 0.262, kernel_half_width(max(FWHM), 0.262)).numpy()[0]
    depth = (kern**2).sum(axis=(-2, -1)) / SIGMA**2  # psfdepth [1/nmgy^2] whose sigma_pix is SIGMA
    meta = {f"psfsize_{b}": FWHM[i] for i, b in enumerate("grz")} | {f"psfdepth_{b}": depth[i] for i, b in enumerate("grz")}
    hosts = pd.DataFrame({"galaxy_id": host_ids} | meta)
    # the real lenses carry the arcs the injection will draw for the hosts (same seed, same order)
    ordered = hosts.iloc[_order(hosts.galaxy_id, SEED)].reset_index(drop=True)
    arcs = render_arcs(prior_for_hosts(ordered, SEED), dtype=torch.float32).images.numpy().astype(np.float64)
    lenses = sky(N) + np.stack([add_arc_noise(a, SIGMA, rng) for a in arcs])
    write_shard(root / "shards/a.npy", np.concatenate([sky(N), lenses]).astype(np.float32))
    ids = host_ids + lens_ids
    index = pd.DataFrame({"galaxy_id": ids, "cutout_path": "shards/a.npy", "cutout_offset": range(2 * N),
                          "cutout_ok": True, "split": "test", "label": [0] * N + [1] * N})
    # known lenses are a discovered sample: tier A are the lenses whose arcs are observable
    # (matched-filter S/N >= 20 against the white sky noise), the ones the gates compare
    matched = np.sqrt((((arcs / SIGMA[None, :, None, None]) ** 2).sum(axis=(-2, -1))).sum(axis=1))
    tiers = np.where(matched >= OBSERVABLE_MATCHED_SNR, "A", "B")
    assert (tiers == "A").sum() >= 10
    manifest = pd.DataFrame({"galaxy_id": ids, "tier": ["N1"] * N + list(tiers)} | meta)
    return index, manifest, CutoutReader(root)


def _run(store, monkeypatch, arc_scale=1.0, noise=None, bands=(0, 1, 2)):
    import lensaudit.injection.realism_run as rr
    import lensaudit.injection.render as render

    real_render = render.render_arcs

    def scaled(*a, **k):
        res = real_render(*a, **k)
        res.images = res.images[:, list(bands)] * arc_scale
        return res

    monkeypatch.setattr(render, "render_arcs", scaled)
    if noise is not None:
        monkeypatch.setattr(rr, "add_arc_noise", noise)
    index, manifest, reader = store
    rec, noise_tab = rr.run_realism(index, manifest, reader, seed=SEED, n_inject=N, real_tiers=("A",))
    return _gates(rec, noise_tab)


def test_healthy_injection_is_green(store, monkeypatch):
    gates = _run(store, monkeypatch)
    assert len(gates) == 8
    assert all(g.passed for g in gates.values()), {k: (g.metric, g.details) for k, g in gates.items() if not g.passed}


@pytest.mark.parametrize("scale", [0.0, 1e-3, 1e3])
def test_wrong_arc_flux_turns_the_snr_gates_red(store, monkeypatch, scale):
    gates = _run(store, monkeypatch, arc_scale=scale)
    assert not gates["realism_arc_snr_median"].passed, {k: g.metric for k, g in gates.items()}
    assert not gates["realism_arc_snr_p90"].passed, {k: g.metric for k, g in gates.items()}
    assert not gates["realism_arc_snr_p10"].passed, {k: g.metric for k, g in gates.items()}
    if scale < 1:  # arcs far too faint: no injection is observable, nothing to compare with the known lenses
        assert all(gates[f"realism_arc_snr_{q}"].details["error"].startswith("need") for q in ("median", "p10", "p90"))


def test_no_arc_noise_turns_the_noise_gates_red(store, monkeypatch):
    gates = _run(store, monkeypatch, noise=lambda arc, sigma_pix, rng, pixscale=0.262: arc)
    assert not any(gates[f"realism_arc_noise_{b}"].passed for b in "grz")
    assert gates["realism_arc_snr_median"].passed  # the faint arc noise is invisible to the S/N gates


def test_wrong_depth_noise_turns_the_noise_gates_red(store, monkeypatch):
    from lensaudit.injection import realism

    def ten_times_sigma(arc, sigma_pix, rng, pixscale=0.262):  # a depth -> sigma units slip (x10 in sigma)
        return realism.add_arc_noise(arc, 10 * np.asarray(sigma_pix), rng, pixscale)

    gates = _run(store, monkeypatch, noise=ten_times_sigma)
    assert not any(gates[f"realism_arc_noise_{b}"].passed for b in "grz")


def test_swapped_bands_turn_the_colour_gates_red(store, monkeypatch):
    """g and z exchanged in the injected arc (a band-order slip): the arc colours are wrong."""
    gates = _run(store, monkeypatch, bands=(2, 1, 0))
    assert not gates["realism_colour_g_r"].passed and not gates["realism_colour_r_z"].passed, \
        {k: (g.metric, g.details) for k, g in gates.items() if k.startswith("realism_colour")}
