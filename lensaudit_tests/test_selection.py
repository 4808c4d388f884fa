"""Selection function: grid, completeness intervals, a planted detector, hosts, detectability, adversarial gates."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import beta

from lensaudit.gates import adversarial_gates as ag
from lensaudit.selection.completeness import completeness_table, marginal
from lensaudit.selection.grid import DEPTH, N_CELLS, PSF, THETA_E, cells


def test_grid_is_the_spec():
    assert N_CELLS == 385 and len(cells()) == 385
    assert np.allclose(THETA_E.centres, np.arange(0.5, 3.01, 0.25)) and np.allclose(PSF.centres, np.arange(0.9, 1.81, 0.15))
    assert np.allclose(DEPTH.centres, [22.5, 23.0, 23.5, 24.0, 24.5])
    assert list(PSF.index([0.82, 0.825, 0.9749, 0.975, 1.87, 1.875, np.nan])) == [-1, 0, 0, 1, 6, -1, -1]


def _planted(n_per_cell=40, seed=0):
    """Injections spread over every cell; the 'detector' responds to theta_E only."""
    rng = np.random.default_rng(seed)
    c = cells()
    rec = c.loc[c.index.repeat(n_per_cell)].reset_index(drop=True)
    rec["theta_e_arcsec"] = rng.uniform(rec.theta_e_lo, rec.theta_e_hi)
    rec["logit"] = rec.theta_e_arcsec - 1.5  # detected iff theta_E >= 1.5"
    rec["observable"] = rec.theta_e_arcsec >= 1.0
    return rec


def test_planted_detector_gives_the_expected_surface():
    t = completeness_table(_planted(), 0.0, "p0.5")
    assert len(t) == 385 and (t.n == 40).all()
    assert (t.loc[t.theta_e_lo >= 1.5, "completeness"] == 1).all()
    assert (t.loc[t.theta_e_hi <= 1.5, "completeness"] == 0).all()
    straddle = t[(t.theta_e_lo < 1.5) & (t.theta_e_hi > 1.5)]
    assert straddle.completeness.between(0.2, 0.8).all()  # 1.375-1.625: about half
    for lev, tag in ((0.68, "68"), (0.95, "95")):
        a = (1 - lev) / 2
        assert np.allclose(t[f"lo{tag}"], beta.ppf(a, t.k + 1, t.n - t.k + 1))
        assert np.allclose(t[f"hi{tag}"], beta.ppf(1 - a, t.k + 1, t.n - t.k + 1))
    assert not t.sufficient.any()
    # decomposition: below theta_E = 1 nothing is observable; conditional recall undefined there
    low = t[t.theta_e_hi <= 1.0]
    assert (low.observable_fraction == 0).all() and low.conditional_recall.isna().all()
    hi = t[t.theta_e_lo >= 1.5]
    assert (hi.conditional_recall == 1).all()
    m = marginal(t, "theta_e")
    assert len(m) == 11 and m.completeness.is_monotonic_increasing


def test_sufficient_flag_and_empty_cells():
    rec = _planted(n_per_cell=1)
    rec = pd.concat([rec] + [rec[rec.cell == 0]] * 199, ignore_index=True)  # cell 0: 200 injections
    rec = rec[rec.cell != 5]
    t = completeness_table(rec, 0.0, "p0.5").set_index("cell")
    assert t.loc[0, "n"] == 200 and t.loc[0, "sufficient"] and not t.drop(0).sufficient.any()
    assert t.loc[5, "n"] == 0 and np.isnan(t.loc[5, "completeness"])
    assert t.loc[5, "lo95"] == pytest.approx(0.025) and t.loc[5, "hi95"] == pytest.approx(0.975)  # the Beta(1,1) prior


def _manifest():
    rows = []
    for i in range(40):
        split = ["train", "val", "test", "test"][i % 4]
        rows.append({"galaxy_id": f"g{i:02d}", "split": split, "label": int(i % 10 == 3), "pool": "N1",
                     "confuser_category": None, "healpix_128": i // 2 if split != "test" else 1000 + i,
                     "psfsize_g": 1.3, "psfsize_r": 1.2, "psfsize_z": 1.1, "psfdepth_g": 800.0,
                     "psfdepth_r": 600.0, "psfdepth_z": 100.0})
    man = pd.DataFrame(rows)
    idx = pd.DataFrame({"galaxy_id": man.galaxy_id, "cutout_path": "shards/x.npy", "cutout_offset": range(40),
                        "cutout_ok": [i != 2 for i in range(40)], "fail_reason": ""})
    return man, idx


def test_hosts_are_held_out_test_negatives_and_a_leak_fails():
    from lensaudit.gates.selection_gates import hosts_held_out
    from lensaudit.selection.hosts import bin_counts, select_hosts

    man, idx = _manifest()
    hosts, left = select_hosts(man, idx)
    ids = set(hosts.galaxy_id)
    expected = set(man[(man.split == "test") & (man.label == 0) & (man.galaxy_id != "g02")].galaxy_id)
    assert ids == expected and left["cutout_not_ok"] == 1
    assert hosts_held_out(hosts, man).passed
    leak = pd.concat([hosts, hosts.iloc[[0]].assign(galaxy_id="g00")], ignore_index=True)  # a train row
    res = hosts_held_out(leak, man)
    assert not res.passed and res.details["not_in_test_split"] == ["g00"]
    pos = pd.concat([hosts, hosts.iloc[[0]].assign(galaxy_id="g03")], ignore_index=True)  # a positive
    assert not hosts_held_out(pos, man).passed
    b = bin_counts(hosts, min_hosts=5)
    assert len(b) == 35 and b.n_hosts.sum() == len(hosts[(hosts.psf_bin >= 0) & (hosts.depth_bin >= 0)])


def test_plan_is_deterministic_and_records_reuse():
    from lensaudit.selection.hosts import select_hosts
    from lensaudit.selection.inject import draw_parameters, plan_injections

    man, idx = _manifest()
    hosts, _ = select_hosts(man, idx)
    p1, p2 = plan_injections(hosts, 30, seed=1), plan_injections(hosts, 30, seed=1)
    pd.testing.assert_frame_equal(p1, p2)
    assert p1.groupby("cell").size().eq(30).all() and p1.cell.nunique() == 11  # one (PSF, depth) bin holds them all
    assert p1.host_use.max() == 30 // len(hosts) and p1.injection_id.is_unique
    par = draw_parameters(p1, hosts, seed=1)
    c = cells().set_index("cell").loc[p1.cell]
    assert (par.theta_e_arcsec.to_numpy() >= c.theta_e_lo.to_numpy()).all()
    assert (par.theta_e_arcsec.to_numpy() < c.theta_e_hi.to_numpy()).all()
    pd.testing.assert_frame_equal(par, draw_parameters(p1, hosts, seed=1))


def test_detectability_statistic_is_unbiased_on_noise_and_sees_an_arc():
    from lensaudit.injection.realism import annulus_stats
    from lensaudit.selection.detectability import annulus_snr, observable
    from lensaudit.stamps import radius_map

    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, (64, 3, 101, 101))
    snr = annulus_snr(torch.from_numpy(noise)).numpy()
    assert abs(snr.mean()) < 0.5 and 0.5 < snr.std() < 1.6
    assert observable(snr).mean() < 0.05
    assert np.abs(annulus_stats(noise[0])["snr"]).max() < 4  # the realism statistic is unclipped too: ~N(0, 1) on noise
    yy, xx = np.mgrid[:101, :101] - 50
    third = np.abs(np.arctan2(yy, xx)) < np.pi / 3  # a 120-degree arc: the ring median stays at the sky
    arc = np.where((np.abs(radius_map(101) - 10) < 1.5) & third, 0.1, 0.0)
    full_ring = np.where(np.abs(radius_map(101) - 10) < 1.5, 0.02, 0.0)
    # a complete, round ring is removed by the azimuthal median: a documented blind spot
    assert (np.abs(annulus_snr(torch.from_numpy(noise[:4] + full_ring)).numpy()) < 4).all()
    snr_arc = annulus_snr(torch.from_numpy(noise[:4] + arc)).numpy()
    assert (snr_arc > 10).all() and observable(snr_arc).all()


def test_arc_suppression_removes_a_ring():
    from lensaudit.selection.adversarial import ring_image, suppress_annulus
    from lensaudit.selection.detectability import annulus_snr
    from lensaudit.stamps import radius_map

    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.002, (2, 3, 101, 101)).astype(np.float32)
    arc = np.where((np.abs(radius_map(101) - 8) < 1.0) & (np.arange(101)[None, :] > 50), 0.05, 0).astype(np.float32)
    before = annulus_snr(torch.from_numpy(x + arc)).numpy()
    after = annulus_snr(torch.from_numpy(suppress_annulus(x + arc))).numpy()
    assert (before > 20).all() and (np.abs(after) < 3).all()
    ring = ring_image()
    assert ring.shape == (3, 101, 101) and ring.max() == pytest.approx(0.01, rel=1e-3)


def test_adversarial_gates_on_planted_scores():
    rng = np.random.default_rng(2)
    h = rng.normal(-4, 1, 500)
    assert ag.null_injection_ks(h, h).passed
    assert not ag.null_injection_ks(h + 1.0, h).passed
    assert ag.synthetic_ring(h, h + 0.1, 0.0).passed
    assert not ag.synthetic_ring(h, h + 4.0, 0.0).passed
    assert ag.arc_suppression(h, h - 0.5).passed and not ag.arc_suppression(h, h + 0.5).passed
    theta = rng.uniform(0.5, 3, 500)
    assert ag.spearman_positive(theta + rng.normal(0, 0.3, 500), theta, "theta_e").passed
    assert not ag.spearman_positive(-theta, theta, "theta_e").passed
    for res in (ag.null_injection_ks(h[:3], h[:3]), ag.arc_suppression(h[:2], h[:2]),
                ag.spearman_positive(h[:5], h[:5], "snr")):
        assert not res.passed and "error" in res.details  # cannot be computed: fails


def test_failure_attribution_order():
    from lensaudit.selection.failure_modes import attribute_misses

    inj = pd.DataFrame({"logit": [-1.0, -1.0, -1.0, -1.0, 2.0], "observable": [False, True, True, True, True],
                        "theta_e_arcsec": [2.0, 0.6, 2.0, 2.0, 2.0], "psf_fwhm_r_arcsec": 1.2,
                        "src_mag_r": [23.0, 23.0, 26.0, 22.0, 22.0], "magnification": 5.0})
    miss = attribute_misses(inj, 0.0)
    assert list(miss.cause) == ["not_observable", "psf_blended", "low_sb", "other"]
