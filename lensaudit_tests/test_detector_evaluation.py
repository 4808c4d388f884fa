"""The detector's data view, per-sample augmentation, negative subsampling and the evaluation report."""

import numpy as np
import pandas as pd
import pytest
import torch

from lensaudit.detector.train import augment
from lensaudit.evaluation.report import evaluate, missing_intervals, roc_curve


def _meta(n_pos=60, n_neg=3000, seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    meta = pd.DataFrame({
        "label": y, "tier": np.where(y == 1, np.where(np.arange(len(y)) % 3 == 0, "A", "B"), "N1"),
        "confuser_category": np.where((y == 0) & (np.arange(len(y)) % 7 == 0), "spiral", None),
        "psfsize_r": rng.uniform(0.9, 1.8, len(y)), "psfdepth_r": rng.uniform(200, 2000, len(y)),
        "nobs_z_bin": rng.choice(["1-2", "3-5", "6+"], len(y))})
    logits = rng.normal(np.where(y == 1, 2.0, -3.0), 1.0)
    return logits, meta


def _val(n_neg, seed=7):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(20, int), np.zeros(n_neg, int)]
    return rng.normal(np.where(y == 1, 2.0, -3.0), 1.0), y


def test_evaluation_report_has_every_metric_with_intervals():
    logits, meta = _meta()
    val_logits, val_y = _val(1500)
    rep = evaluate(logits, meta, val_logits, val_y, n_boot=1000, seed=1)
    assert missing_intervals(rep) == []
    auc = rep["metrics"]["roc_auc"]
    assert auc["lo95"] <= auc["lo68"] <= auc["value"] <= auc["hi68"] <= auc["hi95"]
    assert set(rep["thresholds"]) == {"fpr0.01", "fpr0.001"} and "p0.5" not in rep["thresholds"]
    t = rep["thresholds"]["fpr0.01"]
    # the threshold is the validation split's, applied unchanged to the test rows
    neg_val = np.sort(val_logits[val_y == 0])[::-1]
    assert t["chosen_on"] == "val" and t["logit"] == pytest.approx(np.nextafter(neg_val[15], np.inf))
    k = int(((logits >= t["logit"]) & (meta.label == 1) & (meta.tier == "A")).sum())
    assert t["tier_recall"]["A"]["k"] == k and t["tier_recall"]["A"]["n"] == 20
    assert set(t["fpr_by_confuser_category"]) == {"N1", "spiral"}
    assert set(t["fpr_by_condition"]) == {"psfsize_r_arcsec", "psfdepth_r_mag5sigma", "nobs_z_bin"}
    n_cat = sum(v["n"] for v in t["fpr_by_confuser_category"].values())
    assert n_cat == 3000
    assert rep["metrics"]["ece_top1pct"]["value"] is not None  # 31 rows >= 15 bins
    assert 0 < rep["metrics"]["brier_skill_vs_prevalence"]["value"] <= 1  # a useful model beats the prevalence
    # a validation split too small for FPR 1e-3 marks it insufficient: never extrapolated
    rep = evaluate(logits, meta, *_val(500), n_boot=1000, seed=1)
    assert rep["thresholds"]["fpr0.01"]["sufficient"] and not rep["thresholds"]["fpr0.001"]["sufficient"]
    assert rep["thresholds"]["fpr0.001"]["recall"]["value"] is None


def test_evaluation_reports_fixed_purity_points_beside_the_fpr_points():
    """The spec's purity points (0.5, 0.9 at prevalence 1e-3) in ``purity_thresholds``: chosen
    on val; test recall / precision (bootstrap), FPR (Beta), purity at the prevalence (bootstrap)."""
    import json

    from lensaudit.evaluation.metrics import threshold_at_purity
    from lensaudit.spec import PURITY_POINTS, PurityPoint

    logits, meta = _meta()
    val_logits, val_y = _val(1500)
    rep = evaluate(logits, meta, val_logits, val_y, n_boot=1000, seed=1)
    json.dumps(rep, allow_nan=False)  # JSON-able as evaluation.json is written
    assert missing_intervals(rep) == []
    assert set(rep["thresholds"]) == {"fpr0.01", "fpr0.001"}  # the FPR points are unchanged
    assert set(rep["purity_thresholds"]) == {p.name for p in PURITY_POINTS} == {"purity0.5_prev0.001",
                                                                                  "purity0.9_prev0.001"}
    hi = rep["purity_thresholds"]["purity0.9_prev0.001"]  # 1500 val negatives < 8991
    assert not hi["sufficient"] and hi["logit"] is None and "8991 needed" in hi["definition"]
    assert all(hi[k]["value"] is None for k in ("recall", "precision", "fpr", "purity"))
    # a stated point that 1500 val negatives resolve, with a hand-checkable test purity
    point = PurityPoint(0.3, 1e-2)
    rep = evaluate(logits, meta, val_logits, val_y, n_boot=1000, seed=1, purity_points=(point,))
    e = rep["purity_thresholds"][point.name]
    ref = threshold_at_purity(val_logits, val_y, point)
    assert e["sufficient"] and e["chosen_on"] == "val" and e["logit"] == ref["logit"]
    assert e["val_purity"] >= 0.3 and (e["target_purity"], e["prevalence"]) == (0.3, 1e-2)
    y, t = meta.label.to_numpy(), e["logit"]
    tpr, fpr = (logits[y == 1] >= t).mean(), (logits[y == 0] >= t).mean()
    assert e["recall"]["value"] == pytest.approx(tpr) and e["fpr"]["value"] == pytest.approx(fpr)
    assert e["fpr"]["n"] == 3000 and e["purity"]["prevalence"] == 1e-2
    assert e["purity"]["value"] == pytest.approx(1e-2 * tpr / (1e-2 * tpr + 0.99 * fpr))
    for k in ("recall", "precision", "purity"):
        m = e[k]
        assert m["lo95"] <= m["lo68"] <= m["hi68"] <= m["hi95"]
    assert e["tier_recall"]["A"]["n"] == 20
    assert ("caveat" in e["purity"]) == (fpr == 0)
    # no test negative over the threshold: purity 1 is said to be a bound, not a measurement
    sep = np.where(y == 1, logits, logits - 20.0)
    e = evaluate(sep, meta, val_logits, val_y, n_boot=1000, seed=1, purity_points=(point,))["purity_thresholds"][point.name]
    assert e["fpr"]["k"] == 0 and e["purity"]["value"] == 1.0 and "not measured" in e["purity"]["caveat"]


def test_audit_report_operating_point_table_shows_purity_points(tmp_path):
    from lensaudit.audit_report import operating_point_table

    logits, meta = _meta()
    rep = evaluate(logits, meta, *_val(1500), n_boot=1000, seed=1)
    page = operating_point_table(rep)
    for name in ("fpr0.01", "fpr0.001", "purity0.5_prev0.001", "purity0.9_prev0.001"):
        assert f"<td>{name}</td>" in page
    assert "fixed purity" in page and "pi = 0.001" in page and "8991 needed" in page
    assert "&amp;gt;" not in page  # escaped once
    # the home's audit report carries the table, read from evaluation.json
    from lensaudit.audit_report import build_report
    from lensaudit.config import get_profile
    from lensaudit.detector.run import write_json_atomic
    from lensaudit.evaluation.run import evaluation_json_path

    profile, home = get_profile("tiny"), tmp_path / "home"
    write_json_atomic(rep, evaluation_json_path(home, profile.detector.audit_arch))
    html = build_report(home, profile)
    assert "Operating points" in html and "<td>purity0.5_prev0.001</td>" in html
    assert "purity @ purity0.5_prev0.001" in html


def test_evaluation_of_one_class_fails_clearly():
    logits, meta = _meta()
    neg = meta.label == 0
    with pytest.raises(ValueError, match="needs both classes"):
        evaluate(logits[neg.to_numpy()], meta[neg], *_val(500))
    with pytest.raises(ValueError, match="n_boot"):
        evaluate(logits, meta, *_val(500), n_boot=100)


def test_missing_intervals_catches_a_bare_metric():
    logits, meta = _meta()
    rep = evaluate(logits, meta, *_val(500), n_boot=1000)
    rep["metrics"]["roc_auc"]["lo95"] = None
    assert missing_intervals(rep) == ["metrics.roc_auc"]


def test_roc_curve_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    logits, meta = _meta(seed=3)
    fpr, tpr = roc_curve(logits, meta.label)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(meta.label, logits), abs=1e-9)


def test_augment_is_a_per_sample_dihedral_transform():
    x = torch.arange(64 * 2 * 5 * 5, dtype=torch.float32).reshape(64, 2, 5, 5)
    y = augment(x, torch.Generator().manual_seed(0))
    group = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
    group += [torch.flip(g, dims=(3,)) for g in group]
    which = [next(i for i, g in enumerate(group) if torch.equal(y[n], g[n])) for n in range(64)]
    assert len(set(which)) > 4  # different samples get different transforms
    assert torch.equal(torch.sort(y.flatten()).values, torch.sort(x.flatten()).values)  # brightness untouched


def test_augment_is_rot90_then_flip_of_the_drawn_code():
    """The gather through pixel maps is exactly rot90(k = code % 4) then a W flip for code >= 4,
    sample by sample, with the code drawn as before (the same generator stream)."""
    x = torch.randn(40, 3, 7, 7)
    got = augment(x, torch.Generator().manual_seed(5))
    code = torch.randint(0, 8, (40,), generator=torch.Generator().manual_seed(5))
    for i in range(40):
        want = torch.rot90(x[i], int(code[i]) % 4, dims=(1, 2))
        want = torch.flip(want, dims=(2,)) if code[i] >= 4 else want
        assert torch.equal(got[i], want)
    with pytest.raises(ValueError, match="square"):
        augment(torch.zeros(2, 3, 4, 5), torch.Generator())


def test_raw_robust_reads_only_its_window(tmp_path):
    """input_window holds the crop and the whole annulus: raw_robust of the window equals
    raw_robust of the whole stamp bit for bit (NaN pixels in the annulus included), and the
    store reads that window."""
    from lensaudit.cutouts.store import CutoutReader, write_shard
    from lensaudit.detector.preprocess import _annulus_mask, input_window, raw_robust

    rng = np.random.default_rng(3)
    stack = rng.normal(0, 1, (4, 3, 101, 101)).astype(np.float32)
    stack[1, 0, 50, 18] = np.nan  # an annulus pixel on the window's edge
    assert input_window(101, 64) == (18, 83) and input_window(101, 101) == (0, 101)
    for size, crop in ((101, 64), (101, 33), (101, 101), (80, 64)):
        a, b = input_window(size, crop)
        assert _annulus_mask(size)[a:b, a:b].sum() == _annulus_mask(size).sum()
    a, b = input_window(101, 64)
    full, deg_full = raw_robust(stack, crop=64)
    win, deg_win = raw_robust(np.ascontiguousarray(stack[:, :, a:b, a:b]), crop=64)
    assert np.array_equal(full, win) and np.array_equal(deg_full, deg_win)
    assert not np.array_equal(raw_robust(np.ascontiguousarray(stack[:, :, a + 1:b - 1, a + 1:b - 1]), crop=61)[0],
                              raw_robust(stack, crop=61)[0])  # a window without the annulus's rim is not it
    tmp = tmp_path
    write_shard(tmp / "shards/s-0.npy", stack)
    idx = pd.DataFrame({"cutout_path": "shards/s-0.npy", "cutout_offset": [2, 0, 3], "cutout_ok": True})
    got = CutoutReader(tmp).read(idx, window=(a, b))
    assert np.array_equal(got, stack[[2, 0, 3], :, a:b, a:b])
    with pytest.raises(ValueError, match="window"):
        CutoutReader(tmp).read(idx, window=(90, 120))
    with pytest.raises(ValueError, match="crop"):
        input_window(101, 102)


def test_negative_subsampling_reweights_and_is_validated():
    from lensaudit.detector.train import TrainConfig, train

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (40, 3, 16, 16)).astype(np.float32)
    y = np.r_[np.ones(4, int), np.zeros(36, int)]
    with pytest.raises(ValueError, match="neg_fraction"):
        train(TrainConfig(epochs=1, neg_fraction_per_epoch=0.0), x, y, np.ones(40), x, y)
    with pytest.raises(ValueError, match="both classes"):
        train(TrainConfig(epochs=1), x, y, np.ones(40), x, np.zeros(40, int))
    _, hist, info = train(TrainConfig(epochs=1, batch_size=8, neg_fraction_per_epoch=0.25), x, y, np.ones(40), x, y,
                          log=lambda *_: None)
    assert info["epochs_run"] == 1 and np.isfinite(hist[0]["train_loss"])
    # CUDA graphs are a CUDA-only execution mode: on the CPU the flag changes nothing (on the
    # H200 the graphed steps gave bit-identical weights: bench/bench_detector.py, RESULTS.md)
    _, hist_g, info_g = train(TrainConfig(epochs=1, batch_size=8, neg_fraction_per_epoch=0.25), x, y, np.ones(40), x,
                              y, log=lambda *_: None, cuda_graph=True)
    assert hist_g[0]["train_loss"] == hist[0]["train_loss"] and not info_g["cuda_graph"] and not info["cuda_graph"]


def test_data_view_reads_ok_rows_and_counts_exclusions(tmp_path):
    from lensaudit.cutouts.store import CutoutReader, write_shard
    from lensaudit.detector.data import join_manifest_index, load_split

    rng = np.random.default_rng(0)
    write_shard(tmp_path / "shards/s-0.npy", rng.normal(0, 1, (3, 3, 101, 101)).astype(np.float32))
    man = pd.DataFrame({"galaxy_id": ["a", "b", "c", "d"], "label": [1, 0, 0, 0], "split": "test",
                        "sample_weight": 1.0, "tier": ["A", "N1", "N1", "N1"], "healpix_128": 1})
    idx = pd.DataFrame({"galaxy_id": ["a", "b", "c"], "cutout_path": "shards/s-0.npy", "cutout_offset": [0, 1, -1],
                        "cutout_ok": [True, True, False], "fail_reason": ["", "", "qc: core_nan"]})
    rows = join_manifest_index(man, idx)
    d = load_split(rows, CutoutReader(tmp_path), "test", crop=64)
    assert d.x.shape == (2, 3, 64, 64) and list(d.meta.galaxy_id) == ["a", "b"]
    assert d.excluded == {"qc: core_nan": 1, "missing_from_index": 1}
    with pytest.raises(ValueError, match="duplicated"):
        join_manifest_index(man, pd.concat([idx, idx.iloc[[0]]]))


def test_score_store_matches_the_in_memory_path(tmp_path):
    from lensaudit.cutouts.store import CutoutReader, write_shard
    from lensaudit.detector.models import build_model
    from lensaudit.detector.preprocess import raw_robust
    from lensaudit.detector.score import score_store
    from lensaudit.detector.train import predict

    rng = np.random.default_rng(0)
    stack = rng.normal(0, 1, (10, 3, 101, 101)).astype(np.float32)
    write_shard(tmp_path / "shards/s-0.npy", stack)
    idx = pd.DataFrame({"cutout_path": "shards/s-0.npy", "cutout_offset": [3, 4, 5, 9, 0, 1, 2], "cutout_ok": True})
    torch.manual_seed(0)
    model = build_model("resnet18").eval()
    got = score_store(idx, CutoutReader(tmp_path), model, "cpu", crop=64, batch=3, workers=2)
    want = predict(model, raw_robust(stack[idx.cutout_offset.to_numpy()], crop=64)[0], "cpu")
    assert np.allclose(got, want, atol=1e-5)
    # the CUDA-only options change nothing on the CPU (their GPU parity: bench_detector.py)
    for kw in ({"compiled": True}, {"cuda_graph": True}, {"cuda_graph": True, "graph_preprocess": True},
               {"compiled": True, "cuda_graph": True, "graph_preprocess": True}):
        assert np.array_equal(score_store(idx, CutoutReader(tmp_path), model, "cpu", crop=64, batch=3, workers=2,
                                          **kw), got)
    # an index of one batch or less (it once found no read queued and raised IndexError), and of no row
    for rows in (idx.iloc[:3], idx.iloc[:1]):
        one = score_store(rows, CutoutReader(tmp_path), model, "cpu", crop=64, batch=3, workers=2)
        assert np.allclose(one, got[:len(rows)], atol=1e-5)
    assert score_store(idx.iloc[:0], CutoutReader(tmp_path), model, "cpu", batch=3).shape == (0,)
    # the default reader threads (4 on the CPU, whatever ``compiled`` asks): the same logits
    for kw in ({}, {"compiled": True}):
        assert np.array_equal(score_store(idx, CutoutReader(tmp_path), model, "cpu", crop=64, batch=3, **kw), got)
    # reads in chunks of any size (one row, a batch, beyond a batch) give the same logits; the waits are reported
    for chunk in (1, 2, 3, 100):
        stats = {}
        assert np.array_equal(score_store(idx, CutoutReader(tmp_path), model, "cpu", crop=64, batch=3, workers=2,
                                          read_chunk=chunk, stats=stats), got)
        assert set(stats) == {"wait_read_s", "wait_copy_s", "first_read_s", "wall_s"}
        assert stats["wall_s"] >= stats["wait_read_s"] >= 0 and stats["wall_s"] >= stats["first_read_s"] > 0
    with pytest.raises(ValueError, match="cutout_ok"):
        score_store(idx.assign(cutout_ok=False), CutoutReader(tmp_path), model, "cpu")


def test_prior_shift_moves_only_the_output_bias_by_log_f():
    """neg_subsample_correction='prior_shift': the selected model's output bias is shifted by
    log(f) (King & Zeng 2001 prior correction): every logit moves by exactly log(f), so the
    ranking (AUC, FPR thresholds) is untouched and the odds return to the full prior."""
    import math

    from lensaudit.detector.models import OUTPUT_BIAS_KEY, build_model
    from lensaudit.detector.train import TrainConfig, predict, train

    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (40, 3, 32, 32)).astype(np.float32)
    y = np.r_[np.ones(4, int), np.zeros(36, int)]
    with pytest.raises(ValueError, match="neg_subsample_correction"):
        train(TrainConfig(epochs=1, neg_fraction_per_epoch=0.5, neg_subsample_correction="none"), x, y, np.ones(40), x, y)
    cfg = TrainConfig(epochs=1, batch_size=8, neg_fraction_per_epoch=0.25, neg_subsample_correction="prior_shift")
    best, _, info = train(cfg, x, y, np.ones(40), x, y, log=lambda *_: None)
    assert info["output_bias_prior_shift"] == pytest.approx(math.log(0.25))
    shifted = build_model("resnet18")
    shifted.load_state_dict(best)
    unshifted_state = dict(best)
    key = OUTPUT_BIAS_KEY["resnet18"]
    unshifted_state[key] = best[key] - math.log(0.25)
    unshifted = build_model("resnet18")
    unshifted.load_state_dict(unshifted_state)
    d = predict(shifted, x, "cpu", bf16=False) - predict(unshifted, x, "cpu", bf16=False)
    np.testing.assert_allclose(d, math.log(0.25), atol=1e-5)
    _, _, info_w = train(TrainConfig(epochs=1, batch_size=8, neg_fraction_per_epoch=0.25), x, y, np.ones(40), x, y,
                         log=lambda *_: None)
    assert info_w["output_bias_prior_shift"] == 0.0


def test_replay_rows_fills_the_static_input_and_returns_its_rows():
    """The one replay of a captured scoring graph (scan and selection function): rows copied in,
    the rest zeroed (a partial batch never sees a previous batch's stamps), the first rows out."""
    from lensaudit.detector.graphs import replay_rows

    static_in, static_out = torch.full((4, 2), 7.0), torch.zeros(4, 1)
    graph = (static_in, lambda: static_out.copy_(static_in.sum(dim=1, keepdim=True)), static_out)
    got = replay_rows(graph, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert got.tolist() == [[3.0], [7.0]] and static_in[2:].eq(0).all() and static_out[2:].eq(0).all()
