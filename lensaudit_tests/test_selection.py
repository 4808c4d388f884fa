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
    rec["host_logit"] = -10.0  # no host is a false positive
    rec["galaxy_id"] = [f"h{i % 8}" for i in range(len(rec))]  # 8 hosts cycled through each cell
    rec["observable"] = rec.theta_e_arcsec >= 1.0
    return rec


def _hpd_beta(k, n, level):
    """The reference interval: equal-tailed Beta(k+1, n-k+1), HPD (one-sided) at k = 0 and k = n."""
    a = (1 - level) / 2
    lo, hi = beta.ppf(a, k + 1, n - k + 1), beta.ppf(1 - a, k + 1, n - k + 1)
    lo = np.where(k == 0, 0.0, np.where(k == n, beta.ppf(1 - level, k + 1, n - k + 1), lo))
    hi = np.where(k == n, 1.0, np.where(k == 0, beta.ppf(level, k + 1, n - k + 1), hi))
    return lo, hi


def test_planted_detector_gives_the_expected_surface():
    t = completeness_table(_planted(), 0.0, "fpr0.01")
    assert len(t) == 385 and (t.n == 40).all() and (t.n_host_fp == 0).all() and (t.n_hosts == 8).all()
    assert (t.loc[t.theta_e_lo >= 1.5, "completeness"] == 1).all()
    assert (t.loc[t.theta_e_hi <= 1.5, "completeness"] == 0).all()
    straddle = t[(t.theta_e_lo < 1.5) & (t.theta_e_hi > 1.5)]
    assert straddle.completeness.between(0.2, 0.8).all()  # 1.375-1.625: about half
    for lev, tag in ((0.68, "68"), (0.95, "95")):
        lo, hi = _hpd_beta(t.k.to_numpy(), t.n.to_numpy(), lev)
        assert np.allclose(t[f"lo{tag}"], lo) and np.allclose(t[f"hi{tag}"], hi)
        # the interval always holds the point estimate (also at k = 0 and k = n)
        assert ((t[f"lo{tag}"] <= t.completeness) & (t.completeness <= t[f"hi{tag}"])).all()
    assert not t.sufficient.any()
    assert t.cluster_ok.all() and ((t.cluster_lo95 <= t.completeness) & (t.completeness <= t.cluster_hi95)).all()
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
    t = completeness_table(rec, 0.0, "fpr0.01").set_index("cell")
    assert t.loc[0, "n"] == 200 and t.loc[0, "sufficient"] and not t.drop(0).sufficient.any()
    assert t.loc[5, "n"] == 0 and np.isnan(t.loc[5, "completeness"])
    assert t.loc[5, "lo95"] == pytest.approx(0.025) and t.loc[5, "hi95"] == pytest.approx(0.975)  # the Beta(1,1) prior


def test_every_host_a_false_positive_gives_empty_cells_not_a_crash():
    rec = _planted(n_per_cell=2).assign(host_logit=10.0)  # every host crosses the threshold
    t = completeness_table(rec, 0.0, "fpr0.01")
    assert len(t) == 385 and (t.n == 0).all() and (t.n_host_fp == 2).all() and t.completeness.isna().all()
    assert (t.n_hosts == 0).all() and not t.cluster_ok.any()


def _manifest():
    rows = []
    for i in range(40):
        split = ["train", "val", "test", "test"][i % 4]
        rows.append({"galaxy_id": f"g{i:02d}", "split": split, "label": int(i % 10 == 3), "pool": "N1",
                     "confuser_category": None, "healpix_128": i // 2 if split != "test" else 1000 + i,
                     "psfsize_g": 1.3, "psfsize_r": 1.2, "psfsize_z": 1.1, "psfdepth_g": 800.0,
                     "psfdepth_r": 600.0, "psfdepth_z": 100.0, "ebv": 0.03})
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


def test_plan_follows_its_rule_cell_by_cell_and_the_overlapped_draws_equal_the_sequential():
    """The plan, built bin by bin, is the documented rule written out cell by cell: in grid
    order, each cell of a bin that holds hosts cycles through them in the stable order of
    splitmix64(sha256("<galaxy_id>:<seed>")[:8] ^ (cell + 1) x golden ratio); ids c<cell>-<k>.
    ``plan_and_parameters`` (the prior's draws in a thread) gives the sequential numbers; a
    prior drawn for another row count is a clear error."""
    import hashlib

    from lensaudit.selection.inject import draw_parameters, plan_and_parameters, plan_injections

    rng = np.random.default_rng(5)
    n = 60
    hosts = pd.DataFrame({"galaxy_id": [f"g{i:03d}" for i in rng.permutation(n)],
                          "psf_bin": rng.integers(-1, 3, n), "depth_bin": rng.integers(0, 2, n),
                          "psfsize_g": 1.3, "psfsize_r": 1.2, "psfsize_z": 1.1})
    hosts.loc[0, "psf_bin"] = PSF.n  # a bin outside the grid: no cell, no rows, no error
    per_cell, seed = 9, 4
    plan = plan_injections(hosts, per_cell, seed)

    def mix(z):
        with np.errstate(over="ignore"):
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            return z ^ (z >> np.uint64(31))

    rows = []
    for c in cells().itertuples(index=False):
        ids = hosts[(hosts.psf_bin == c.psf_bin) & (hosts.depth_bin == c.depth_bin)].galaxy_id.to_numpy()
        if not len(ids):
            continue
        key = np.array([int.from_bytes(hashlib.sha256(f"{g}:{seed}".encode()).digest()[:8], "big") for g in ids],
                       dtype=np.uint64)
        with np.errstate(over="ignore"):
            order = np.argsort(mix(key ^ (np.uint64(c.cell + 1) * np.uint64(0x9E3779B97F4A7C15))), kind="stable")
        rows += [(f"c{c.cell:03d}-{k:05d}", c.cell, c.theta_e_bin, c.psf_bin, c.depth_bin, ids[order][k % len(ids)],
                  k // len(ids)) for k in range(per_cell)]
    ref = pd.DataFrame(rows, columns=list(plan.columns))
    for col in ("cell", "theta_e_bin", "psf_bin", "depth_bin", "host_use"):
        ref[col] = ref[col].astype(np.int64)
    in_grid = hosts[(hosts.psf_bin >= 0) & (hosts.psf_bin < PSF.n)]
    assert plan.cell.nunique() == 11 * len(in_grid[["psf_bin", "depth_bin"]].drop_duplicates())
    assert hosts.galaxy_id[0] not in set(plan.galaxy_id)
    pd.testing.assert_frame_equal(plan, ref)
    both = plan_and_parameters(hosts, per_cell, seed)
    pd.testing.assert_frame_equal(both[0], plan)
    pd.testing.assert_frame_equal(both[1], draw_parameters(plan, hosts, seed))
    with pytest.raises(ValueError, match="prior draws for"):
        from lensaudit.selection.inject import _prior_draws

        draw_parameters(plan, hosts, seed, prior=_prior_draws(len(plan) - 1, seed))


def test_annulus_statistic_is_unbiased_on_noise_and_blind_to_full_rings():
    from lensaudit.injection.realism import annulus_stats
    from lensaudit.injection.annulus import annulus_snr
    from lensaudit.stamps import radius_map

    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, (64, 3, 101, 101))
    snr = annulus_snr(torch.from_numpy(noise)).numpy()
    assert abs(snr.mean()) < 0.5 and 0.5 < snr.std() < 1.6
    assert np.abs(annulus_stats(noise[0])["snr"]).max() < 4  # the realism statistic is unclipped too: ~N(0, 1) on noise
    full_ring = np.where(np.abs(radius_map(101) - 10) < 1.5, 0.02, 0.0)
    # a complete, round ring is removed by the azimuthal median: why it is not the observability statistic
    assert (np.abs(annulus_snr(torch.from_numpy(noise[:4] + full_ring)).numpy()) < 4).all()


def test_matched_snr_sees_rings_and_counts_correlated_noise():
    from lensaudit.injection.visibility import (OBSERVABLE_MATCHED_SNR, matched_snr, noise_correlation_factor,
                                                   observable, outer_sigma)
    from lensaudit.stamps import radius_map

    rng = np.random.default_rng(3)
    white = torch.from_numpy(rng.normal(0, 0.01, (32, 3, 101, 101)))
    f_white = noise_correlation_factor(white).numpy()
    assert abs(f_white.mean() - 1) < 0.05
    # correlated noise: a 3x3 boxcar smoothing, rescaled to the same per-pixel sigma
    k = torch.ones(1, 1, 3, 3, dtype=torch.float64) / 9
    corr = torch.nn.functional.conv2d(white.reshape(-1, 1, 101, 101), k, padding=1).reshape(32, 3, 101, 101)
    corr = corr * (0.01 / corr.std())
    f_corr = noise_correlation_factor(corr).numpy()
    assert f_corr.mean() > 2.0  # 5x5 sums of 3x3-smoothed noise carry ~2.6x the white value
    ring = torch.from_numpy(np.where(np.abs(radius_map(101) - 10) < 1.5, 0.004, 0.0)).expand(32, 3, 101, 101)
    sig = outer_sigma(white)
    snr_w = matched_snr(ring, sig, noise_correlation_factor(white, sigma=sig)).numpy()
    analytic = np.sqrt(((ring[0, 0].numpy() / 0.01) ** 2).sum())
    # a complete ring is seen at its full S/N (the per-stamp factor is itself measured: ~8 % scatter)
    assert abs(snr_w.mean() / analytic - 1) < 0.05 and np.allclose(snr_w, analytic, rtol=0.35)
    snr_c = matched_snr(ring, outer_sigma(corr), noise_correlation_factor(corr)).numpy()
    assert (snr_c < snr_w / 1.8).all()  # correlated noise lowers the S/N of the same arc
    comb = np.sqrt(((3 * snr_w) ** 2).sum(axis=1))  # the same ring, 3x brighter: S/N ~ 29
    assert observable(comb).all() and not observable(np.full(3, OBSERVABLE_MATCHED_SNR - 1)).any()


def test_arc_suppression_removes_a_ring():
    from lensaudit.selection.adversarial import ring_image, suppress_annulus
    from lensaudit.injection.annulus import annulus_snr
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
    rms = np.full(500, 1e-3)
    assert ag.null_controls(h + rng.normal(0, 0.05, 500), h, rms, 0.0).passed
    assert not ag.null_controls(h + 4.0, h, rms, 0.0).passed  # controls cross the threshold
    assert not ag.null_controls(h, h, np.zeros(500), 0.0).passed  # bit-identical to the hosts: a tautology
    assert not ag.null_controls(h, h, rms, None).passed  # no operating threshold: cannot be computed
    assert ag.synthetic_ring(h, h + 0.1, 0.0).passed
    assert not ag.synthetic_ring(h, h + 4.0, 0.0).passed
    assert ag.arc_suppression(h, h - 0.5).passed and not ag.arc_suppression(h, h + 0.5).passed
    jitter = rng.normal(0, 1, 500)
    assert not ag.arc_suppression(h, h + jitter - jitter.mean()).passed  # no mean drop, only scatter
    for res in (ag.null_controls(h[:3], h[:3], rms[:3], 0.0), ag.arc_suppression(h[:2], h[:2])):
        assert not res.passed and "error" in res.details  # cannot be computed: fails


def _trend_injections(n=3000, seed=4):
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.5, 3.0, n)
    host = np.array([f"h{i}" for i in rng.integers(0, 150, n)])
    return rng, theta, host


def test_trend_gate_healthy_ignores_theta_and_no_signal():
    rng, theta, host = _trend_injections()
    logit = 2.0 * (theta - 2.0) + rng.normal(0, 0.5, len(theta))  # completeness rises with theta_E
    res = ag.trend_gate(theta, logit, logit >= 0, host, "theta_e")
    assert res.passed and res.details["rho_lower"] > 0.5 and res.details["tercile_diff_lower"] > 0.3
    flat = rng.normal(0, 1, len(theta))  # a detector whose score ignores theta_E
    res = ag.trend_gate(theta, flat, flat >= 1.0, host, "theta_e")
    assert not res.passed and res.details["rho_lower"] < 0
    few = logit >= 5.0  # a handful of detections: too little to decide
    res = ag.trend_gate(theta, logit, few, host, "theta_e")
    assert not res.passed and res.details["error"].startswith("no signal")


def test_trend_bound_respects_host_clustering():
    """A trend carried by one host's offsets is not significant once hosts are resampled."""
    from lensaudit.selection.trends import trend

    rng = np.random.default_rng(5)
    host = np.repeat([f"h{i}" for i in range(6)], 200)
    theta = np.repeat(np.linspace(0.5, 3, 6), 200) + rng.normal(0, 0.01, 1200)
    logit = np.repeat(rng.normal(0, 2, 6), 200) + rng.normal(0, 0.1, 1200)  # host effects only
    t = trend(theta, logit, logit > 0, host, 500, 0, 0.95)
    naive_se = 1 / np.sqrt(1200)
    assert abs(t["rho"]) > 3 * naive_se  # an iid reading would call it significant
    assert t["rho_lower"] < 0 or t["tercile_diff_lower"] <= 0  # the cluster bound does not


def test_detection_rule_excludes_host_false_positives():
    rec = _planted(n_per_cell=10)
    rec.loc[rec.galaxy_id == "h0", "host_logit"] = 5.0  # a host that crosses on its own
    t = completeness_table(rec, 0.0, "fpr0.01")
    n_fp = int((rec.galaxy_id == "h0").sum())
    assert t.n_host_fp.sum() == n_fp and t.n.sum() == len(rec) - n_fp
    assert t.k.sum() == int(((rec.logit >= 0) & (rec.galaxy_id != "h0")).sum())


def test_cluster_interval_needs_several_hosts_and_widens_with_host_effects():
    c = cells()
    rec = c.loc[c.index.repeat(50)].reset_index(drop=True)
    rec["host_logit"], rec["observable"] = -10.0, True
    rec["galaxy_id"] = "only_host"
    rec["logit"] = np.where(np.arange(len(rec)) % 2 == 0, 1.0, -1.0)
    t = completeness_table(rec, 0.0, "fpr0.01")
    assert (t.n_hosts == 1).all() and not t.cluster_ok.any() and t.cluster_lo95.isna().all()
    # 10 hosts, each either always or never detected: the effective n is ~10, not 50
    rec["galaxy_id"] = [f"h{i % 10}" for i in range(len(rec))]
    rec["logit"] = np.where(rec.galaxy_id.isin([f"h{i}" for i in range(5)]), 1.0, -1.0)
    t = completeness_table(rec, 0.0, "fpr0.01")
    assert t.cluster_ok.all() and (t.n_eff < 20).all()
    assert ((t.cluster_hi95 - t.cluster_lo95) > (t.hi95 - t.lo95)).all()


def test_failure_attribution_order():
    from lensaudit.selection.failure_modes import attribute_misses

    inj = pd.DataFrame({"logit": [-1.0, -1.0, -1.0, -1.0, 2.0, -1.0], "host_logit": [-5.0] * 5 + [3.0],
                        "observable": [False, True, True, True, True, True],
                        "theta_e_arcsec": [2.0, 0.6, 2.0, 2.0, 2.0, 2.0], "psf_fwhm_r_arcsec": 1.2,
                        "src_mag_r": [23.0, 23.0, 26.0, 22.0, 22.0, 22.0], "magnification": 5.0})
    miss = attribute_misses(inj, 0.0)
    # the last row's host crosses on its own: a host false positive, not a miss
    assert list(miss.cause) == ["not_observable", "psf_blended", "low_sb", "other"]


def test_completeness_validity_gate_red_on_planted_faults():
    from lensaudit.gates.selection_gates import completeness_table_valid

    rec = _planted(n_per_cell=12)
    rec.loc[rec.galaxy_id == "h3", "host_logit"] = 1.0  # one host false positive per cell
    t = completeness_table(rec, 0.0, "fpr0.01")
    assert completeness_table_valid(t, rec, 0.0).passed
    bad = t.copy()
    bad.loc[10, "k"] += 1  # a count that the injections do not support
    assert not completeness_table_valid(bad, rec, 0.0).passed
    assert not completeness_table_valid(t, rec, 0.3).passed  # threshold not the validation split's
    fp_counted = completeness_table(rec.assign(host_logit=-10.0), 0.0, "fpr0.01")  # host FPs counted as detections
    assert not completeness_table_valid(fp_counted, rec, 0.0).passed
    wide = t.copy()
    wide["lo95"] = 0.0  # an interval that is not the Beta one
    assert not completeness_table_valid(wide, rec, 0.0).passed
    assert not completeness_table_valid(t, rec, None).passed  # no threshold: cannot be computed
    assert not completeness_table_valid(t.iloc[:100], rec, 0.0).passed  # missing cells
    # the headline column edited alone (n, k and the intervals left as they were): recomputed, red
    forged = t.copy()
    forged.loc[t["n"] > 0, "completeness"] = 0.9
    res = completeness_table_valid(forged, rec, 0.0)
    assert not res.passed and "recomputed_completeness" in res.details["problems"]
    boot = t.copy()
    boot["cluster_hi95"] = boot["cluster_hi95"] + 0.01  # the host-cluster interval widened
    assert not completeness_table_valid(boot, rec, 0.0).passed
    # another operating point's table: recomputed at its own threshold; edited, or at another threshold: red
    other = completeness_table(rec, 1.5, "fpr0.001")
    assert completeness_table_valid(t, rec, 0.0, others={"fpr0.001": (other, 1.5)}).passed
    edited = other.copy()
    edited["k"] = np.minimum(edited["n"], 2 * edited["k"] + 3)
    res = completeness_table_valid(t, rec, 0.0, others={"fpr0.001": (edited, 1.5)})
    assert not res.passed and any(k.startswith("fpr0.001: ") for k in res.details["problems"])
    assert not completeness_table_valid(t, rec, 0.0, others={"fpr0.001": (other, 1.4)}).passed
    assert not completeness_table_valid(t, rec, 0.0, others={"fpr0.001": (other, None)}).passed


def test_missed_injections_gate_recomputes_the_list():
    """The planted faults of a forged failure list: half the misses dropped, a detection listed, a
    cause changed, a row twice; no threshold: cannot be computed (red)."""
    from lensaudit.gates.selection_gates import missed_injections_recomputed
    from lensaudit.selection.failure_modes import attribute_misses

    rec = _planted(n_per_cell=12).assign(psf_fwhm_r_arcsec=1.2, src_mag_r=23.0, magnification=4.0)
    rec["injection_id"] = [f"i{k}" for k in range(len(rec))]
    miss = attribute_misses(rec, 0.0)
    assert len(miss) > 10 and missed_injections_recomputed(miss, rec, 0.0).passed
    res = missed_injections_recomputed(miss.iloc[::2], rec, 0.0)
    assert not res.passed and res.details["problems"]["missed_left_out"] == len(miss) - len(miss.iloc[::2])
    detected = rec[~rec["injection_id"].isin(miss["injection_id"])].iloc[:1].assign(cause="other")
    assert not missed_injections_recomputed(pd.concat([miss, detected]), rec, 0.0).passed
    recaused = miss.copy()
    recaused.iloc[0, recaused.columns.get_loc("cause")] = "psf_blended" if miss["cause"].iloc[0] != "psf_blended" else "other"
    assert not missed_injections_recomputed(recaused, rec, 0.0).passed
    assert not missed_injections_recomputed(pd.concat([miss, miss.iloc[:1]]), rec, 0.0).passed
    assert not missed_injections_recomputed(miss, rec, 1.0).passed  # the list of another threshold
    assert not missed_injections_recomputed(miss, rec, None).passed
