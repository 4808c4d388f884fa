"""Realism statistics and gates: N(0, 1) S/N on noise, arc-only colours, arc noise, and the
realism gates on the six real DR10 lens-candidate cutouts.  The planted-fault tests of the
gates (arc flux x0, x1e-3, x1000; no / wrong arc noise) are in test_realism_faults.py."""

import numpy as np
import pytest
import torch

from lensaudit.gates.realism_gates import arc_noise_gates, colour_gates, snr_quantile_gates
from lensaudit.injection.params import validate_rows
from lensaudit.injection.realism import (add_arc_noise, annulus_stats, arc_noise_residuals, arc_poisson_sigma,
                                         arc_stats, colours, injected_arc_flux, null_scale, sigma_pix_from_depth)
from lensaudit.injection.render import render_arcs
from lensaudit.stamps import radius_map
from lensaudit_tests.test_injection import row


@pytest.fixture(scope="module")
def real_cutouts(real_data):
    files = sorted((real_data / "dr10_cutouts_lens_candidates").glob("*.npz"))
    stamps = [np.load(f)["cutout"].astype(np.float64).transpose(2, 0, 1) for f in files]
    assert len(stamps) == 6 and all(s.shape == (3, 101, 101) for s in stamps)  # six distinct DR10 candidates
    return np.stack(stamps)


def test_arc_snr_is_standard_normal_on_pure_noise():
    """The unclipped annulus S/N of noise-only stamps: mean 0, std 1 per band and combined
    (600 band values, 200 combined: sampling error of the std ~3 % / ~5 %)."""
    rng = np.random.default_rng(11)
    noise = rng.normal(0, 1, (200, 3, 101, 101)) * np.array([0.004, 0.007, 0.02])[None, :, None, None]
    st = arc_stats(noise)
    snr, comb = st["snr"].ravel(), st["snr_combined"]
    assert abs(snr.mean()) < 0.15 and 0.9 < snr.std() < 1.1
    assert abs(comb.mean()) < 0.25 and 0.85 < comb.std() < 1.15
    assert 0.70 < null_scale(101) < 0.78  # the ring median removes ~(1 - (pi/2 - 1)) of the ring's noise variance
    # the old clipped statistic read ~11 per band here; an absent arc must read ~0
    assert np.abs(st["flux_nmgy"] / st["flux_err_nmgy"] - st["snr"]).max() < 1e-9


def test_integrated_snr_scales_with_flux_not_peak():
    """An arc (a partial ring: the ring median stays near the sky) adds S/N in proportion to its flux."""
    rng = np.random.default_rng(0)
    host = rng.normal(0, 0.01, (3, 101, 101))
    arc = render_arcs(validate_rows([row(src_mag_g=21.5, src_mag_r=21.0, src_mag_z=20.5, src_x_arcsec=0.6,
                                         src_y_arcsec=0.0)])).images[0].numpy()
    s0 = annulus_stats(host)["snr_combined"]
    s1 = annulus_stats(host + arc)["snr_combined"]
    s2 = annulus_stats(host + 2 * arc)["snr_combined"]
    # ~linear; the arc lifts the ring medians a little, more at low S/N (hence 15 %)
    assert s1 > 5 and (s2 - s0) == pytest.approx(2 * (s1 - s0), rel=0.15)


def test_annulus_statistics_on_real_lenses(real_cutouts):
    st = arc_stats(real_cutouts)
    assert np.isfinite(st["snr_combined"]).all() and (st["flux_err_nmgy"] > 0).all()
    assert np.median(st["snr_combined"]) > 3  # real candidates' arcs are seen above the noise
    ok = np.isfinite(st["colour_g_r"])
    assert ok.sum() >= 3 and (st["colour_g_r_err"][ok] > 0).all()


def test_arc_only_colours_injection_vs_host_subtracted_real():
    """The injection's arc-only colour (flux of injected minus flux of its host) is near the
    source colour, and equals, within the error, the host-subtracted colour of the same arc
    on another noisy stamp with a red round host of r ~ 20.7 mag (a 'real lens')."""
    rows = [row(src_mag_g=22.0 + d, src_mag_r=22.0, src_mag_z=22.0 - d / 2, src_x_arcsec=0.6, src_y_arcsec=0.0)
            for d in (0.0, 0.4, 0.9)]
    arcs = render_arcs(validate_rows(rows)).images.numpy()
    rng = np.random.default_rng(3)
    # brighter hosts leave ring-median residuals (~ -1.5 % of their annulus flux when round,
    # more when elliptical) that pull a real lens's arc colour towards the host's
    host = 0.05 * np.exp(-radius_map(101) / 4.0)[None] * np.array([0.3, 1.0, 2.0])[:, None, None]
    host_a = host[None] + rng.normal(0, 0.003, arcs.shape)
    inj = colours(injected_arc_flux(arc_stats(host_a + arcs)["flux_nmgy"], host_a))
    # near the source colour; the operator keeps less of the arc in the band with the broader
    # PSF (g 1.3", z 1.1") and in fainter bands, so the colour reads up to ~0.2 mag redder
    assert np.allclose(inj["colour_g_r"], [0.0, 0.4, 0.9], atol=0.25)
    assert np.allclose(inj["colour_r_z"], [0.0, 0.2, 0.45], atol=0.25)
    real = arc_stats(host[None] + arcs + rng.normal(0, 0.003, arcs.shape))
    for key in ("colour_g_r", "colour_r_z"):
        assert (real[f"{key}_err"] > 0).all() and (real[f"{key}_err"] < 0.1).all()
        assert (np.abs(real[key] - inj[key]) < 3 * real[f"{key}_err"] + 0.05).all()


def test_noise_model():
    k = np.zeros((3, 5, 5))
    k[:, 2, 2] = 1.0  # a delta PSF: sigma_pix = 1/sqrt(depth)
    assert np.allclose(sigma_pix_from_depth(np.array([100.0, 25.0, 4.0]), k), [0.1, 0.2, 0.5])
    arc = np.full((3, 101, 101), 0.5)
    s = arc_poisson_sigma(arc, np.array([0.01, 0.01, 0.01]))
    assert (s > 0).all() and np.allclose(s[:, 0, 0] ** 2 / arc[:, 0, 0], s[:, 1, 1] ** 2 / arc[:, 1, 1])
    noisy = add_arc_noise(arc, np.array([0.01, 0.01, 0.01]), np.random.default_rng(0))
    assert np.allclose((noisy - arc).std(axis=(1, 2)), s[:, 0, 0], rtol=0.05)
    assert np.array_equal(add_arc_noise(np.zeros((3, 4, 4)), np.ones(3), np.random.default_rng(0)), np.zeros((3, 4, 4)))


def test_arc_noise_residuals_are_standard_normal_and_see_a_missing_noise():
    rng = np.random.default_rng(5)
    sigma = np.array([0.004, 0.006, 0.015])
    host = rng.normal(0, 1, (3, 101, 101)) * sigma[:, None, None]
    model = render_arcs(validate_rows([row(src_mag_g=20.5, src_mag_r=20.0, src_mag_z=19.5)])).images[0].numpy()
    good = arc_noise_residuals(host + add_arc_noise(model, sigma, rng), host, model)
    assert all(len(v) > 100 for v in good)
    assert all(g.passed for g in arc_noise_gates(good))
    none = arc_noise_residuals(host + model, host, model)
    assert not any(g.passed for g in arc_noise_gates(none))
    wrong = arc_noise_residuals(host + add_arc_noise(model, 3 * sigma, rng), host, model)  # depth -> sigma off x3
    assert not any(g.passed for g in arc_noise_gates(wrong))


def test_snr_gate_is_defined_for_non_positive_quantiles():
    rng = np.random.default_rng(0)
    noise_only = rng.normal(0, 1, 300)  # quantiles <= 0: max(q, 1) = 1 on both sides
    same = snr_quantile_gates(noise_only, rng.normal(0, 1, 300))
    assert all(g.passed for g in same) and same[0].metric == 1.0 and same[1].metric == 1.0
    arcs = rng.lognormal(np.log(15), 0.5, 300)
    missing = snr_quantile_gates(noise_only, arcs)
    assert not any(g.passed for g in missing) and all(np.isfinite(g.metric) for g in missing)
    assert all(g.passed for g in snr_quantile_gates(arcs * 1.3, arcs))
    assert not any(g.passed for g in snr_quantile_gates(arcs * 1000, arcs))


def test_colour_gate_selects_detected_arcs_on_both_sides():
    n = 40
    snr = {f"snr_{b}": np.full(n, 10.0) for b in "grz"}
    inj = {"colour_g_r": np.full(n, 0.5), "colour_r_z": np.full(n, 0.3), **snr}
    real = {"colour_g_r": np.full(n, 0.6), "colour_r_z": np.full(n, 0.3), **snr}
    assert all(g.passed for g in colour_gates(inj, real))
    assert not colour_gates(inj, {**real, "colour_g_r": np.full(n, 0.9)})[0].passed
    faint = {**real, "colour_g_r": np.full(n, 3.0), "snr_g": np.full(n, 1.0)}  # noise colours do not count ...
    assert not colour_gates(inj, faint)[0].passed and "need" in colour_gates(inj, faint)[0].details["error"]


def test_realism_gates_run_on_real_cutouts(real_cutouts):
    """Inject arcs into the real cutouts and compare with the same cutouts as 'real lenses':
    the gate functions compute from real pixels end to end."""
    rows = [row(theta_e_arcsec=1.2 + 0.2 * i, src_mag_r=21.5 + 0.3 * i, src_x_arcsec=0.5 * (1.2 + 0.2 * i))
            for i in range(len(real_cutouts))]  # off-centre sources: arcs, which the ring median keeps
    arcs = render_arcs(validate_rows(rows)).images.numpy()
    injected = real_cutouts + arcs
    inj, real = arc_stats(injected), arc_stats(real_cutouts)
    snr = snr_quantile_gates(inj["snr_combined"], real["snr_combined"])
    assert [g.name for g in snr] == ["realism_arc_snr_median", "realism_arc_snr_p10", "realism_arc_snr_p90"]
    assert all(g.metric is not None and np.isfinite(g.metric) for g in snr)
    assert all(g.metric > 1 for g in snr)  # adding arcs raises the annulus S/N
    sn = {f"snr_{b}": inj["snr"][:, i] for i, b in enumerate("grz")}
    cols = colour_gates({k: inj[k] for k in ("colour_g_r", "colour_r_z")} | sn,
                        {k: real[k] for k in ("colour_g_r", "colour_r_z")} | {f"snr_{b}": real["snr"][:, i]
                                                                            for i, b in enumerate("grz")})
    assert [g.name for g in cols] == ["realism_colour_g_r", "realism_colour_r_z"]


def test_real_dr10_lens_candidates_are_a_discovered_sample(real_cutouts):
    """The reason the S/N gates compare the *observable* injections: real known lenses carry
    visible arcs (the six DR10 candidates: median annulus S/N ~10), far above the whole
    injection prior's (~1 on the demo sky), so a comparison with the whole prior would be red
    on real data however realistic the injections."""
    snr = arc_stats(real_cutouts)["snr_combined"]
    assert 5.0 < np.median(snr) < 20.0, snr


def test_snr_gates_compare_the_observable_injections():
    """Injections whose arcs are observable (matched S/N >= 20) match the real lenses; the
    invisible rest of the prior (annulus S/N ~0) must not drag the quantiles down, and a table
    without the matched S/N cannot be judged."""
    import pandas as pd

    from lensaudit.gates.realism_gates import observable_snr_gates

    rng = np.random.default_rng(4)
    real = rng.lognormal(np.log(8.0), 0.6, 60)
    seen = rng.lognormal(np.log(8.0), 0.6, 200)
    rec = pd.DataFrame({"kind": ["injected"] * 400 + ["real"] * 60,
                        "snr_combined": np.concatenate([seen, rng.normal(0, 1, 200), real]),
                        "arc_snr_matched": np.concatenate([np.full(200, 40.0), np.full(200, 5.0), np.full(60, np.nan)])})
    gates = observable_snr_gates(rec)
    assert [g.name for g in gates] == ["realism_arc_snr_median", "realism_arc_snr_p10", "realism_arc_snr_p90"]
    assert all(g.passed for g in gates), [(g.name, g.metric) for g in gates]
    assert gates[0].details["n_injected"] == 200 and gates[0].details["n_injected_all"] == 400
    # the same injections, all taken as observable: the invisible half pulls the median below 0.5x
    everything = observable_snr_gates(rec.assign(arc_snr_matched=np.where(rec.kind == "real", np.nan, 40.0)))
    assert not everything[0].passed and not everything[1].passed
    # arcs too faint to be observable anywhere (x1e-3): nothing to compare, red
    faint = observable_snr_gates(rec.assign(arc_snr_matched=rec.arc_snr_matched * 1e-3))
    assert not any(g.passed for g in faint) and all("need" in g.details["error"] for g in faint)
    missing = observable_snr_gates(rec.drop(columns="arc_snr_matched"))
    assert not any(g.passed for g in missing) and all("arc_snr_matched" in g.details["error"] for g in missing)


def test_gates_cannot_pass_without_data():
    assert not any(g.passed for g in snr_quantile_gates(np.array([1.0, np.nan]), np.array([1.0])))
    empty = {k: [] for k in ("colour_g_r", "colour_r_z", "snr_g", "snr_r", "snr_z")}
    assert not any(g.passed for g in colour_gates(empty, empty))
    assert not any(g.passed for g in arc_noise_gates([np.zeros(10)] * 3))
    assert not any(g.passed for g in arc_noise_gates([np.array([])] * 3))


def test_compiled_renderer_matches_eager_on_cpu():
    cols = validate_rows([row(), row(theta_e_arcsec=2.0, src_n_sersic=3.0)])
    eager = render_arcs(cols, dtype=torch.float32).images
    comp = render_arcs(cols, dtype=torch.float32, compiled=True).images
    assert (comp - eager).abs().max() <= 1e-4 * eager.abs().max()


def test_prior_ranges():
    from lensaudit.injection.prior import draw_source_and_lens

    p = draw_source_and_lens(np.random.default_rng(0), 5000)
    assert 0.5 <= p["theta_e_arcsec"].min() and p["theta_e_arcsec"].max() <= 3.0
    assert 22 <= p["src_mag_r"].min() and p["src_mag_r"].max() <= 26
    gr, rz = p["src_mag_g"] - p["src_mag_r"], p["src_mag_r"] - p["src_mag_z"]
    assert gr.min() >= 0 and gr.max() <= 1 and rz.min() >= -0.2 and rz.max() <= 0.8
    beta = np.hypot(p["src_x_arcsec"], p["src_y_arcsec"]) / p["theta_e_arcsec"]
    assert beta.min() >= 0.05 - 1e-12 and beta.max() <= 0.5 + 1e-12
    validate_rows([{k: float(v[i]) for k, v in p.items()} | {"psf_fwhm_g_arcsec": 1.3, "psf_fwhm_r_arcsec": 1.2,
                                                              "psf_fwhm_z_arcsec": 1.1} for i in range(50)])


def test_run_realism_on_real_hosts(real_cutouts, tmp_path):
    import pandas as pd

    from lensaudit.cutouts.store import CutoutReader, write_shard
    from lensaudit.injection.realism_run import run_realism
    from lensaudit.tables import INJECTION_REALISM_SCHEMA

    write_shard(tmp_path / "shards/a.npy", real_cutouts.astype(np.float32))
    ids = [f"g{i}" for i in range(6)]
    index = pd.DataFrame({"galaxy_id": ids, "cutout_path": "shards/a.npy", "cutout_offset": range(6), "cutout_ok": True,
                          "split": ["test"] * 4 + ["train"] * 2, "label": [0] * 4 + [1] * 2})
    manifest = pd.DataFrame({"galaxy_id": ids, "tier": ["N1"] * 4 + ["A", "B"], "psfsize_g": 1.4, "psfsize_r": 1.2,
                             "psfsize_z": 1.1, "psfdepth_g": 2000.0, "psfdepth_r": 800.0, "psfdepth_z": 150.0})
    rec, noise = run_realism(index, manifest, CutoutReader(tmp_path), seed=3, n_inject=3, real_tiers=("A",))
    assert set(INJECTION_REALISM_SCHEMA.names) <= set(rec.columns)
    inj, real = rec[rec.kind == "injected"], rec[rec.kind == "real"]
    assert len(inj) == 3 and set(inj.galaxy_id) <= set(ids[:4]) and (inj.magnification > 1).all()
    assert real.galaxy_id.tolist() == ["g4"] and np.isfinite(inj.snr_combined).all()
    # arc-only fluxes by the same point-symmetric host subtraction on both sides
    assert np.isfinite(inj.arc_flux_r_nmgy).all() and np.isfinite(real.arc_flux_r_nmgy).all()
    assert set(noise.galaxy_id) <= set(inj.galaxy_id)
    assert set(noise.columns) == {"galaxy_id", "band", "value"} and set(noise.band) <= {"g", "r", "z"}
    rec2, _ = run_realism(index, manifest, CutoutReader(tmp_path), seed=3, n_inject=3, real_tiers=("A",))
    pd.testing.assert_frame_equal(rec, rec2)  # deterministic for a seed
    rec3, _ = run_realism(index, manifest, CutoutReader(tmp_path), seed=3, n_inject=4, real_tiers=("A",))
    common = rec3[rec3.kind == "injected"].set_index("galaxy_id").loc[inj.galaxy_id]
    assert np.allclose(common.theta_e_arcsec, inj.theta_e_arcsec)  # per-injection seeds: batch-independent


def test_arc_colours_remove_a_symmetric_host_and_keep_the_arc_colour():
    """A bright, red, elliptical lens galaxy plus a blue 120-degree arc: the point-symmetric
    subtraction returns the arc's colour, not the galaxy's (the ring-median residual would not)."""
    from lensaudit.injection.realism import arc_colours
    from lensaudit.stamps import radius_map

    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[:101, :101] - 50.0
    q = 0.6
    rell = np.hypot(xx, yy / q)
    galaxy = np.exp(-(rell / 4.0))  # elliptical, point-symmetric
    gal_flux = np.array([0.3, 1.0, 2.0])[:, None, None] * 2.0  # red: g-r ~ 1.3, r-z ~ 0.75
    arc_shape = np.where((np.abs(radius_map(101) - 10) < 1.5) & (np.abs(np.arctan2(yy, xx)) < np.pi / 3), 1.0, 0.0)
    arc_flux = np.array([1.0, 1.0, 1.0])[:, None, None] * 0.02  # flat: g-r = r-z = 0
    stamps = np.stack([galaxy[None] * gal_flux + arc_shape[None] * arc_flux + rng.normal(0, 0.002, (3, 101, 101))
                       for _ in range(8)])
    c = arc_colours(stamps)
    assert np.all(np.abs(c["colour_g_r"]) < 0.1) and np.all(np.abs(c["colour_r_z"]) < 0.1), c
    assert (c["footprint_npix"] > 20).all()
