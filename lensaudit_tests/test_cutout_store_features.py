"""Cutout store, mock stamps, features, AUC and the shortcut / completeness gates."""

import warnings

import numpy as np
import pandas as pd
import pytest

from lensaudit.cutouts.features import (FEATURE_BLOCK, FEATURES, core_pixels, core_window, features_of, features_table,
                                        saturation_threshold, store_features_table, store_saturation_threshold)
from lensaudit.cutouts.npz import read_npz
from lensaudit.cutouts.store import CutoutReader, ShardError, export_npz, shard_relpath, write_shard
from lensaudit.auc import bootstrap_auc, roc_auc
from lensaudit.gates import data_gates
from lensaudit.gates.shortcut_gates import core_only_lr_gate, feature_auc_table, single_feature_gates


def _index(paths_offsets):
    return pd.DataFrame({"galaxy_id": [f"g{i}" for i in range(len(paths_offsets))],
                         "cutout_path": [p for p, _ in paths_offsets], "cutout_offset": [o for _, o in paths_offsets],
                         "cutout_ok": True})


def test_store_reads_what_was_written_in_order(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 3, 101, 101)).astype(np.float32)
    b = rng.normal(size=(4, 3, 101, 101)).astype(np.float32)
    write_shard(tmp_path / "shards/a.npy", a)
    write_shard(tmp_path / "shards/b.npy", b)
    idx = _index([("shards/b.npy", 3), ("shards/a.npy", 0), ("shards/a.npy", 1), ("shards/a.npy", 2), ("shards/b.npy", 0)])
    out = CutoutReader(tmp_path).read(idx)
    assert np.array_equal(out, np.stack([b[3], a[0], a[1], a[2], b[0]]))
    assert not list(tmp_path.rglob("*.tmp"))


def test_shard_written_stamp_by_stamp_is_np_save_of_the_stack(tmp_path):
    """The cutout job hands write_shard / shard_relpath its stamps, not a stacked copy: the file is
    byte for byte np.save's of the stacked float32 array, the name's digest is the stack's sha256."""
    import hashlib

    rng = np.random.default_rng(2)
    stamps = [rng.normal(size=(3, 101, 101)).astype(np.float32) for _ in range(3)]
    stamps.append(rng.normal(size=(3, 101, 101)))  # float64: written as float32, as np.stack(dtype=) did
    stack = np.stack(stamps, dtype=np.float32)
    np.save(tmp_path / "ref.npy", stack)
    write_shard(tmp_path / "list.npy", stamps)
    write_shard(tmp_path / "array.npy", stack)
    ref = (tmp_path / "ref.npy").read_bytes()
    assert (tmp_path / "list.npy").read_bytes() == ref == (tmp_path / "array.npy").read_bytes()
    want = hashlib.sha256(stack.tobytes()).hexdigest()[:16]
    assert shard_relpath("s", 3, stamps) == shard_relpath("s", 3, stack) == f"shards/s-0003-{want}.npy"
    with pytest.raises(ValueError, match="one shape"):
        write_shard(tmp_path / "bad.npy", [stamps[0], stamps[0][:, :50]])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        write_shard(tmp_path / "bad.npy", stack[0])
    assert not (tmp_path / "bad.npy").exists()


def test_store_refuses_bad_shards(tmp_path):
    write_shard(tmp_path / "shards/a.npy", np.zeros((2, 3, 101, 101), np.float32))
    with pytest.raises(ShardError, match="past the end"):
        CutoutReader(tmp_path).read(_index([("shards/a.npy", 5)]))
    np.save(tmp_path / "shards/w.npy", np.zeros((2, 3, 64, 64), np.float32))
    with pytest.raises(ShardError, match="shape"):
        CutoutReader(tmp_path).read(_index([("shards/w.npy", 0)]))
    (tmp_path / "shards/t.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ShardError, match="unreadable"):
        CutoutReader(tmp_path).read(_index([("shards/t.npy", 0)]))
    with pytest.raises(ShardError, match="escapes"):
        CutoutReader(tmp_path).read(_index([("../outside.npy", 0)]))
    with pytest.raises(ShardError, match="without a cutout_path"):
        CutoutReader(tmp_path).read(_index([("shards/a.npy", 0), (None, 1)]))
    assert CutoutReader(tmp_path).read(_index([])).shape == (0, 3, 101, 101)
    with pytest.raises(ValueError):
        CutoutReader(tmp_path).read(_index([("shards/a.npy", 0)]).assign(cutout_ok=False))


def test_export_npz_round_trip(tmp_path):
    stack = np.random.default_rng(1).normal(size=(2, 3, 101, 101)).astype(np.float32)
    write_shard(tmp_path / "shards/a.npy", stack)
    idx = _index([("shards/a.npy", 1), ("shards/a.npy", 0)]).assign(ra=[1.0, 2.0], dec=[3.0, 4.0], brickname="b")
    files = export_npz(idx, CutoutReader(tmp_path), tmp_path / "npz")
    c = read_npz(files[0])
    assert c.ok and np.array_equal(c.data, stack[1]) and c.meta["galaxy_id"] == "g0" and c.meta["ra"] == 1.0


def test_auc_against_sklearn_and_hand_cases():
    from sklearn.metrics import roc_auc_score

    assert roc_auc([1, 2, 3], [0, 0.5]) == 1.0
    assert roc_auc([0], [1]) == 0.0
    assert roc_auc([1, 1], [1, 1]) == 0.5  # ties count half
    rng = np.random.default_rng(2)
    p, n = rng.normal(1, 1, 300), rng.normal(0, 1, 500)
    y = np.r_[np.ones(300), np.zeros(500)]
    assert roc_auc(p, n) == pytest.approx(roc_auc_score(y, np.r_[p, n]), abs=1e-12)
    with pytest.raises(ValueError):
        roc_auc([], [1.0])


def test_bootstrap_interval_covers_the_true_auc():
    """Known AUC: two unit Gaussians 1 sigma apart have AUC = Phi(1/sqrt 2) = 0.760."""
    from scipy.stats import norm

    true = norm.cdf(1 / np.sqrt(2))
    hits = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        _, lo, hi = bootstrap_auc(rng.normal(1, 1, 120), rng.normal(0, 1, 400), n_boot=200, seed=seed)
        hits += lo <= true <= hi
    assert 0.5 <= hits / 40 <= 0.9  # nominal 68 %


def bootstrap_auc_per_resample(p, n, n_boot=200, level=0.68, seed=0):
    """The first ``bootstrap_auc``: every resample re-ranked by ``roc_auc`` (the oracle of the
    counting one; ``bench/bench_gates.py`` times it as the reference)."""
    rng = np.random.default_rng(seed)
    boots = [roc_auc(p[rng.integers(0, len(p), len(p))], n[rng.integers(0, len(n), len(n))]) for _ in range(n_boot)]
    a = (1 - level) / 2 * 100
    return (roc_auc(p, n), *(float(v) for v in np.percentile(boots, [a, 100 - a])))


def test_bootstrap_counts_equal_the_per_resample_ranks():
    """The bootstrap counts each resample's U from the negatives' resample counts; the oracle re-ranks
    every resample with ``roc_auc`` (the first implementation): the same draws, the same interval to
    the last bit -- ties (integer scores), infinities and a one-sided case included; NaN -> NaN."""
    rng = np.random.default_rng(5)
    cases = [(rng.normal(1, 1, 80), rng.normal(0, 1, 900)),
             (rng.integers(0, 4, 40).astype(float), rng.integers(0, 4, 300).astype(float)),
             (np.r_[np.inf, rng.normal(size=15)], np.r_[-np.inf, np.inf, rng.normal(size=25)]),
             (np.arange(5.0) + 10, np.arange(7.0))]
    for (p, n), (n_boot, level, seed) in zip(cases, [(200, 0.68, 0), (300, 0.95, 3), (100, 0.68, 9), (50, 0.9, 1)]):
        assert bootstrap_auc(p, n, n_boot=n_boot, level=level, seed=seed) == bootstrap_auc_per_resample(p, n, n_boot, level, seed)
    assert all(np.isnan(bootstrap_auc(np.r_[np.nan, 1.0], np.r_[0.0, 2.0])))


def test_features_on_the_six_real_cutouts(real_data):
    stamps = np.stack([read_npz(f).data for f in sorted((real_data / "dr10_cutouts_lens_candidates").glob("*.npz"))])
    sat = saturation_threshold(stamps)
    feats = pd.DataFrame([features_of(s, sat) for s in stamps])
    assert list(feats.columns) == list(FEATURES) and len(feats) == 6
    assert np.isfinite(feats[["core_mean_4", "annulus_mean", "outer_mean", "azimuthal_asymmetry",
                              "laplacian_core", "edge_artefact"]].to_numpy()).all()
    assert (feats["core_mean_4"] > feats["outer_mean"]).all()  # galaxies sit in the centre
    assert core_pixels(stamps).shape == (6, 3 * int((np.hypot(*np.mgrid[-50:51, -50:51]) < 10).sum()))
    a, b = core_window(101)
    assert (a, b) == (41, 60)  # r < 10 px: offsets -9..9 around pixel 50
    assert np.array_equal(core_pixels(stamps[..., a:b, a:b]), core_pixels(stamps))  # what the gate reads


def _reference_features(stamp, sat_threshold):
    """An independent per-stamp statement of DESIGN s3's features (the first implementation:
    one stamp, 1-D selections of the finite pixels, one median per ring), the oracle of
    the vectorised ``features_table``."""
    from lensaudit.stamps import radius_map
    from lensaudit.survey.photometry import nmgy_to_mag

    g, rb, z = (stamp[i].astype(np.float64) for i in range(3))
    rad = radius_map(stamp.shape[-1])
    fin = lambda v: v[np.isfinite(v)]
    m = lambda a, sel: float(fin(a[sel]).mean()) if len(fin(a[sel])) else np.nan
    out = {}
    for rr in (4, 8, 12):
        out[f"core_mean_{rr}"] = m(rb, rad < rr)
        out[f"core_max_{rr}"] = float(fin(rb[rad < rr]).max()) if len(fin(rb[rad < rr])) else np.nan
    ann, outer = (rad >= 4) & (rad < 16), (rad >= 16) & (rad < 28)
    out["annulus_mean"], out["outer_mean"] = m(rb, ann), m(rb, outer)
    out["radial_gradient"] = (out["core_mean_4"] - m(rb, (rad >= 12) & (rad < 16))) / 10.0
    ring = np.floor(rad).astype(int)
    med = np.array([np.median(fin(rb[ring == k])) if len(fin(rb[ring == k])) else 0.0 for k in range(ring.max() + 1)])
    resid = rb - med[ring]
    ro = fin(rb[rad >= 35])
    mad = 1.4826 * float(np.median(np.abs(ro - np.median(ro))))
    rv = fin(resid[ann])
    out["azimuthal_asymmetry"] = float(np.std(rv)) / mad if len(rv) and mad > 0 else np.nan
    lap = np.full_like(rb, np.nan)
    lap[1:-1, 1:-1] = rb[:-2, 1:-1] + rb[2:, 1:-1] + rb[1:-1, :-2] + rb[1:-1, 2:] - 4 * rb[1:-1, 1:-1]
    out["laplacian_core"], out["laplacian_annulus"] = m(lap**2, rad < 8), m(lap**2, ann)
    mag = lambda f: float(nmgy_to_mag(f))
    core = rad < 4
    cg, cr, cz, ag, ar, az = (mag(m(b, sel)) for sel in (core, ann) for b in (g, rb, z))
    out["colour_g_r_annulus_minus_core"] = (ag - ar) - (cg - cr)
    out["colour_r_z_annulus_minus_core"] = (ar - az) - (cr - cz)
    out["saturation_frac"] = float((fin(rb) > sat_threshold).mean())
    borders = [fin(b) for b in (rb[:3], rb[-3:], rb[:, :3], rb[:, -3:])]
    scores = [abs(float(np.median(b)) - float(np.median(ro))) / mad for b in borders if len(b)] if mad > 0 else []
    out["edge_artefact"] = max(scores) if scores else np.nan
    return out


def test_vectorised_features_equal_the_per_stamp_reference(real_data):
    """features_table (blocks of stamps at once) gives the per-stamp reference's numbers, to the
    float64 summation order of numpy's axis reductions: all-finite stamps, stamps with NaN / inf
    pixels (ignored) in their place in the table, a flat outer ring (MAD 0); features_of agrees."""
    from lensaudit.stamps import azimuthal_median, radius_map

    real = np.stack([read_npz(f).data for f in sorted((real_data / "dr10_cutouts_lens_candidates").glob("*.npz"))])
    rng = np.random.default_rng(5)
    noisy = (real[rng.integers(0, len(real), 20)] + rng.normal(0, 0.01, (20, *real.shape[1:]))).astype(np.float32)
    stamps = np.concatenate([real, noisy])
    stamps[7, 1, 0, 0] = np.nan         # a NaN in a border
    stamps[8, 1, 50, 52] = np.nan       # a NaN in the core
    stamps[9, 1, 60, 50] = np.inf       # a corrupted pixel in the annulus
    stamps[10, 1, :, :3] = np.nan       # a whole border without data
    stamps[11, 1] = 0.25                # flat r band: MAD 0 -> asymmetry and edge score NaN
    sat = saturation_threshold(stamps)
    want = pd.DataFrame([_reference_features(s, sat) for s in stamps], columns=list(FEATURES))
    got = features_table(stamps, sat)
    assert list(got.columns) == list(FEATURES) and len(got) == len(stamps)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12, atol=0, equal_nan=True)
    assert np.isnan(got.loc[11, "azimuthal_asymmetry"]) and np.isnan(got.loc[11, "edge_artefact"])
    np.testing.assert_allclose(pd.DataFrame([features_of(s, sat) for s in stamps]).to_numpy(), got.to_numpy(),
                               rtol=1e-12, atol=0, equal_nan=True)
    assert features_table(stamps[:0], sat).shape == (0, len(FEATURES))
    # ring medians of a block = one image at a time; a ring of NaN has median 0
    r = radius_map(stamps.shape[-1])
    block = stamps[:6, 1].astype(np.float64)
    np.testing.assert_array_equal(azimuthal_median(block, r), np.stack([azimuthal_median(b, r) for b in block]))
    holed = block[0].copy()
    holed[np.floor(r).astype(int) == 3] = np.nan
    assert (azimuthal_median(holed, r)[np.floor(r).astype(int) == 3] == 0).all()
    # each ring's median is np.median's (finite rings: order_stats.median_rows), to the bit
    ring = np.floor(r).astype(int)
    for img in (block, holed[None]):
        want_rings = np.zeros((len(img), ring.max() + 1))
        for k in range(ring.max() + 1):
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                want_rings[:, k] = np.nan_to_num(np.nanmedian(img[:, ring == k], axis=1), nan=0.0)
        np.testing.assert_array_equal(azimuthal_median(img, r), want_rings[:, ring])


def test_store_features_in_chunks_equal_the_whole_array_to_the_bit(tmp_path, real_data):
    """The shortcut_features job reads a partition's stamps a chunk at a time into one buffer
    (store_features_table): its table equals features_table of the whole array read at once, to
    the bit, for any chunk size: rows from two shards in the index's order, stamps with NaN / inf
    pixels scattered among them (features_table's blocks: the finite stamps FEATURE_BLOCK at a
    time, the others apart), more than two blocks of each."""
    real = np.stack([read_npz(f).data for f in sorted((real_data / "dr10_cutouts_lens_candidates").glob("*.npz"))])
    rng = np.random.default_rng(11)
    n = 2 * FEATURE_BLOCK + 90
    stamps = (real[rng.integers(0, len(real), n)] + rng.normal(0, 0.01, (n, *real.shape[1:]))).astype(np.float32)
    bad = rng.choice(n, 2 * FEATURE_BLOCK + 5, replace=False)[:40]
    stamps[bad[:20], 1, 50, 50] = np.nan
    stamps[bad[20:], 0, rng.integers(0, 101, 20), rng.integers(0, 101, 20)] = np.inf
    half = n // 2
    write_shard(tmp_path / "shards/a.npy", stamps[:half])
    write_shard(tmp_path / "shards/b.npy", stamps[half:])
    order = rng.permutation(n)
    idx = _index([("shards/a.npy", int(i)) if i < half else ("shards/b.npy", int(i - half)) for i in order])
    reader = CutoutReader(tmp_path)
    sat = saturation_threshold(stamps)
    want = features_table(reader.read(idx), sat)
    assert np.array_equal(want.to_numpy(), features_table(stamps[order], sat).to_numpy(), equal_nan=True)
    for chunk in (1, 7, FEATURE_BLOCK, n + 3):
        got = store_features_table(reader, idx, sat, chunk=chunk)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    empty = store_features_table(reader, idx.iloc[:0], sat)
    assert empty.shape == (0, len(FEATURES)) and list(empty.columns) == list(FEATURES)


def test_store_saturation_threshold_in_chunks_equals_the_whole_sample_to_the_bit(tmp_path):
    """The saturation threshold (the r-band p99.9 of every k-th good stamp in galaxy_id order) read a
    chunk at a time equals ``saturation_threshold`` of the whole sample read at once, to the bit, for
    any chunk size: NaN / inf pixels ignored, bad rows skipped, the galaxy_id order (not the index's)
    deciding the sample; a store whose sampled r bands hold no finite pixel gives inf."""
    rng = np.random.default_rng(21)
    n = 700
    stamps = rng.lognormal(-3, 1.5, (n, 3, 101, 101)).astype(np.float32)
    stamps[rng.integers(0, n, 50), 1, rng.integers(0, 101, 50), rng.integers(0, 101, 50)] = np.nan
    stamps[rng.integers(0, n, 20), 1, rng.integers(0, 101, 20), rng.integers(0, 101, 20)] = np.inf
    stamps[3, 1] = np.nan
    stamps[:, 0] *= 1e3  # the g band far brighter: a threshold from another band would show
    write_shard(tmp_path / "shards/a.npy", stamps[:400])
    write_shard(tmp_path / "shards/b.npy", stamps[400:])
    order = rng.permutation(n)
    idx = _index([("shards/a.npy", int(i)) if i < 400 else ("shards/b.npy", int(i - 400)) for i in order])
    idx["galaxy_id"] = [f"g{int(k):04d}" for k in rng.permutation(n)]
    idx.loc[idx.index[::9], "cutout_ok"] = False
    reader = CutoutReader(tmp_path)
    for sample_rows in (n, 100, 37):
        ok = idx[idx["cutout_ok"]].sort_values("galaxy_id")
        want = saturation_threshold(reader.read(ok.iloc[::max(1, len(ok) // sample_rows)]))
        for chunk in (1, 5, FEATURE_BLOCK, n + 1):
            got = store_saturation_threshold(idx, reader, sample_rows=sample_rows, chunk=chunk)
            assert np.float64(got).tobytes() == np.float64(want).tobytes(), (sample_rows, chunk, got, want)
    assert store_saturation_threshold(idx.iloc[:0], reader) == np.inf
    dark = _index([("shards/a.npy", 3)])
    assert store_saturation_threshold(dark, reader) == np.inf == saturation_threshold(reader.read(dark))


def test_shortcut_gates_flag_a_planted_shortcut():
    rng = np.random.default_rng(3)
    n = 300
    df = pd.DataFrame({"label": np.r_[np.ones(60), np.zeros(n)].astype(int)})
    for f in FEATURES:
        df[f] = rng.normal(size=len(df))
    assert all(g.passed for g in single_feature_gates(feature_auc_table(df, FEATURES)))
    df.loc[df.label == 1, "core_mean_4"] += 2.0  # positives brighter in the core
    red, yellow = single_feature_gates(feature_auc_table(df, FEATURES))
    assert not red.passed and not yellow.passed and red.details["worst_feature"] == "core_mean_4"
    df2 = df.copy()
    df2.loc[df2.label == 1, "core_mean_4"] -= 4.0  # a feature lower for positives separates just as well
    assert not single_feature_gates(feature_auc_table(df2, FEATURES))[0].passed
    assert not any(g.passed for g in single_feature_gates(feature_auc_table(df.iloc[:50], FEATURES)))


def test_core_only_lr_gate():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 30))
    y = (rng.random(400) < 0.2).astype(int)
    assert core_only_lr_gate(x[:300], y[:300], x[300:], y[300:]).passed
    x[y == 1, 0] += 3.0
    g = core_only_lr_gate(x[:300], y[:300], x[300:], y[300:])
    assert not g.passed and g.metric > 0.9
    assert not core_only_lr_gate(x[:10], y[:10], x[300:], y[300:]).passed


def test_core_only_lr_gate_reaches_the_optimum(monkeypatch):
    """The gate's fit is the regularised optimum (an L-BFGS fit run to a tight tolerance gives the
    same val AUC and scores), and a fit stopped before it is not reported as a number."""
    import lensaudit.gates.shortcut_gates as sg
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 60)).astype(np.float32)
    y = (rng.random(3000) < 0.3).astype(int)
    x[y == 1, :5] += 0.15
    g = core_only_lr_gate(x[:2000], y[:2000], x[2000:], y[2000:])
    assert g.passed and g.details["solver"] == "newton-cholesky" and g.details["solver_iterations"] < sg.CORE_LR_MAX_ITER
    sc = StandardScaler().fit(x[:2000])
    tight = LogisticRegression(C=0.1, class_weight="balanced", tol=1e-10, max_iter=10000).fit(sc.transform(x[:2000]), y[:2000])
    s = tight.decision_function(sc.transform(x[2000:]))
    assert g.metric == pytest.approx(roc_auc(s[y[2000:] == 1], s[y[2000:] == 0]), abs=2e-4)
    monkeypatch.setattr(sg, "CORE_LR_MAX_ITER", 1)
    stopped = sg.core_only_lr_gate(x[:2000], y[:2000], x[2000:], y[2000:])
    assert not stopped.passed and "did not converge" in stopped.details["error"]


def test_cutouts_complete_gate():
    man = pd.DataFrame({"galaxy_id": ["a", "b", "c"], "sweep": ["s1", "s1", "s2"]})
    idx = pd.DataFrame({"galaxy_id": ["a", "b"], "sweep": ["s1", "s1"], "cutout_ok": [True, True], "fail_reason": ["", ""]})
    assert data_gates.cutouts_complete(man, idx, 0.02).passed  # s2 not materialised: not expected
    assert not data_gates.cutouts_complete(man, idx.iloc[:1], 0.02).passed  # b missing
    bad = idx.assign(cutout_ok=[True, False], fail_reason=["", "qc: core_nan"])
    assert not data_gates.cutouts_complete(man, bad, 0.02).passed  # 50 % failures
    assert data_gates.cutouts_complete(man, bad, 0.6).passed
    assert not data_gates.cutouts_complete(man, bad.assign(fail_reason=""), 0.6).passed  # failure without reason


def test_feature_medians_are_numpys_to_the_bit():
    """The all-finite blocks' row medians (``order_stats.median_rows``) equal np.median's, long rows and short."""
    from lensaudit.cutouts.features import _median_rows

    rng = np.random.default_rng(4)
    for shape in ((7, 6353), (5, 303), (3, 2)):
        a = rng.normal(size=shape)
        a[0, : shape[1] // 2] = 0.5  # ties
        assert np.array_equal(_median_rows(a, axis=1), np.median(a, axis=1))
    with pytest.raises(ValueError, match="rows"):
        _median_rows(np.zeros((2, 3, 4)), axis=1)
    with pytest.raises(ValueError, match="rows"):
        _median_rows(np.zeros((2, 3)), axis=0)


def test_partition_job_writes_each_shard_as_it_fills(tmp_path, monkeypatch):
    """cutouts_one_partition writes shard k as soon as its shard_rows good stamps are in and lets
    them go: when a shard is written, no stamp of an earlier shard is still alive (a task holds one
    shard of stamps, not its whole partition).  The shards hold the good stamps in row order,
    shard_rows each and the rest in the last; the index points every good row at its stamp."""
    import weakref

    import lensaudit.spark_jobs.cutouts as job
    from lensaudit.cutouts import store as store_mod
    from lensaudit_tests.faults.home import _stamp
    from lensaudit_tests.faults.kill_child import SWEEP, manifest

    alive = {}

    def source(spec, sweep):
        def get(r):
            if int(r.galaxy_id.split("_")[1]) % 7 == 3:
                raise job._SourceFailure("missing_band_g")
            x = _stamp(r.galaxy_id)
            alive[r.galaxy_id] = weakref.ref(x)
            return x
        return get

    held_at_write = []
    real_write = store_mod.write_shard

    def spy(path, stack):
        held_at_write.append(sum(ref() is not None for ref in alive.values()))
        real_write(path, stack)

    monkeypatch.setattr(job, "_source", source)
    monkeypatch.setattr(store_mod, "write_shard", spy)
    out = tmp_path / "idx.parquet"
    info = job.cutouts_one_partition(SWEEP, manifest(), {"kind": "test"}, str(tmp_path / "store"), str(out), shard_rows=8)
    idx = pd.read_parquet(out)
    good = idx[idx["cutout_ok"]]
    assert info["ok"] == len(good) == 34 and len(info["shards"]) == 5
    assert held_at_write == [8, 8, 8, 8, 2]
    assert good["cutout_offset"].tolist() == [i % 8 for i in range(34)]
    assert good["cutout_path"].tolist() == [p for p in info["shards"] for _ in range(8)][:34]
    stamps = CutoutReader(tmp_path / "store").read(good)
    assert np.array_equal(stamps, np.stack([_stamp(g) for g in good["galaxy_id"]]))
