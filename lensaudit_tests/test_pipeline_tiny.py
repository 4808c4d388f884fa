"""The whole data half through Dagster on the tiny profile, twice, in two temp homes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

# the module fixture materialises two tiny homes (Spark, torch) inside the first test's timeout:
# 900 s was exceeded on two busy cores (a demo retrain beside the suite); a hang is still caught
pytestmark = [pytest.mark.dagster, pytest.mark.timeout(1800)]
REPO = Path(__file__).resolve().parents[1]


def _cli(*args, home):
    env = dict(os.environ, LENSAUDIT_HOME=str(home))
    env.pop("DAGSTER_HOME", None)
    return subprocess.run([sys.executable, "-m", "lensaudit_cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    out = []
    for name in ("a", "b"):
        home = tmp_path_factory.mktemp(f"home_{name}")
        r = _cli("materialize", "--profile", "tiny", "--select", "+training_manifest", "--home", str(home), home=home)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
        # the progress bar's total is the runs' Dagster steps (checks share steps): it ends full
        assert re.search(r"steps: 100%\|.*\| (\d+)/\1 \[", r.stderr), r.stderr[-2000:]
        out.append(home)
    return out


def test_assets_stored_as_parquet(homes):
    home = homes[0]
    for asset in ("lens_catalog", "positives", "positives_unmatched", "spatial_splits", "training_manifest",
                  "training_manifest_shortfalls"):
        assert (home / "assets" / asset / "data.parquet").is_file(), asset
    for asset in ("sweep_catalog", "negative_pool", "negative_pool_filter_counts"):
        files = sorted((home / "assets" / asset).glob("*.parquet"))
        assert len(files) == 4, asset  # the tiny profile's four sweeps, one file per partition
    assert not list(home.rglob("*.tmp"))  # no half-written file left behind


def test_manifest_is_deterministic_across_homes(homes):
    a = pd.read_parquet(homes[0] / "assets" / "training_manifest")
    b = pd.read_parquet(homes[1] / "assets" / "training_manifest")
    pd.testing.assert_frame_equal(a, b)
    assert (homes[0] / "assets/training_manifest/data.parquet").read_bytes() == \
        (homes[1] / "assets/training_manifest/data.parquet").read_bytes()


def test_manifest_content(homes):
    m = pd.read_parquet(homes[0] / "assets" / "training_manifest")
    required = ["galaxy_id", "ra", "dec", "label", "tier", "pool", "confuser_category", "split", "sample_weight", "nobs_z",
                "nobs_z_bin", "type", "type_bin", "healpix_128", "psfsize_r", "psfdepth_r", "galdepth_r", "ebv", "brickname"]
    assert set(required) <= set(m.columns)
    assert set(m.tier) == {"A", "B", "N1", "N2"} or set(m.tier) == {"B", "N1", "N2"}
    pos, neg = m[m.label == 1], m[m.label == 0]
    assert len(pos) >= 10 and len(neg) >= 90 * len(pos)
    assert abs((neg.pool == "N2").mean() - 0.15) <= 0.01
    assert m.groupby("healpix_128").split.nunique().max() == 1
    assert m.galaxy_id.is_unique


def test_dagster_recorded_schema_metadata_and_checks(homes):
    import dagster as dg

    from definitions import defs

    for asset in ("lens_catalog", "sweep_catalog", "positives", "negative_pool", "spatial_splits", "training_manifest"):
        spec = defs.resolve_assets_def(asset).specs_by_key[dg.AssetKey(asset)]
        cols = spec.metadata["dagster/column_schema"].columns
        assert cols and all(c.type for c in cols), asset
    inst = dg.DagsterInstance.from_config(str(homes[0] / "dagster"))
    try:
        ev = inst.get_latest_materialization_event(dg.AssetKey("training_manifest"))
        assert ev.asset_materialization.metadata["dagster/row_count"].value > 0
        recs = inst.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("spatial_splits"), "spatial_splits_splits_disjoint"), limit=1)
        assert recs and recs[0].status.value == "SUCCEEDED"
        recs = inst.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("spatial_splits"), "spatial_splits_split_proportions"), limit=1)
        evaluation = recs[0].event.dagster_event.event_specific_data
        assert evaluation.passed and {"metric", "threshold", "details", "plot"} <= set(evaluation.metadata)
    finally:
        inst.dispose()


def test_gates_cli_exit_codes(homes, tmp_path):
    import shutil

    home = tmp_path / "copy"
    shutil.copytree(homes[1], home)
    r = _cli("gates", "--home", str(home), home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "manifest_ratio_per_stratum" in r.stdout and "FAIL" not in r.stdout.replace("positives_match_rate", "")
    # copy a test row into the train split: the disjointness gates must fail and exit 1
    p = home / "assets" / "training_manifest" / "data.parquet"
    m = pd.read_parquet(p)
    leak = pd.concat([m, m[m.split == "test"].iloc[[0]].assign(split="train")], ignore_index=True)
    leak.to_parquet(p, index=False)
    r = _cli("gates", "--home", str(home), home=home)
    assert r.returncode == 1
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("training_manifest_splits_disjoint")][0]
    assert "FAIL" in line


def test_bad_selection_and_empty_home(tmp_path):
    r = _cli("materialize", "--profile", "tiny", "--select", "no_such_asset", "--home", str(tmp_path), home=tmp_path)
    assert r.returncode == 2 and "no_such_asset" in r.stderr
    r = _cli("gates", "--home", str(tmp_path / "empty"), home=tmp_path / "empty")
    assert r.returncode == 1 and "nothing stored" in r.stderr


@pytest.fixture(scope="module")
def with_cutouts(homes):
    home = homes[0]
    r = _cli("materialize", "--profile", "tiny", "--select", "cutouts or shortcut_features or injection_realism",
             "--home", str(home), home=home)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return home


def test_cutouts_cover_the_manifest_and_read_back(with_cutouts):
    import numpy as np

    from lensaudit.cutouts.store import CutoutReader

    home = with_cutouts
    man = pd.read_parquet(home / "assets" / "training_manifest")
    idx = pd.read_parquet(home / "assets" / "cutouts")
    assert set(idx.galaxy_id) == set(man.galaxy_id) and idx.galaxy_id.is_unique
    assert (idx.loc[~idx.cutout_ok, "fail_reason"] != "").all()
    ok = idx[idx.cutout_ok]
    stamps = CutoutReader(home / "cutout_store").read(ok.head(50))
    assert stamps.shape == (50, 3, 101, 101) and stamps.dtype == np.float32 and np.isfinite(stamps[:, :, 45:56, 45:56]).all()
    feats = pd.read_parquet(home / "assets" / "shortcut_features")
    assert len(feats) == len(ok)
    r = _cli("gates", "--home", str(home), home=home)
    for name in ("cutouts_complete", "shortcut_single_feature_red", "shortcut_single_feature_yellow", "shortcut_core_only_lr",
                 "realism_arc_snr_median", "realism_colour_g_r", "realism_arc_noise_r"):
        line = [ln for ln in r.stdout.splitlines() if ln.startswith(name)][0]
        assert "not materialised" not in line
    assert "PASS" in [ln for ln in r.stdout.splitlines() if ln.startswith("cutouts_complete")][0]
    rec = pd.read_parquet(home / "assets" / "injection_realism")
    inj = rec[rec.kind == "injected"]
    assert len(inj) == 100 and (inj.magnification > 1).all() and inj.galaxy_id.isin(idx[idx.split == "test"].galaxy_id).all()
    assert (rec.kind == "real").sum() >= 5


@pytest.fixture(scope="module")
def with_detector(with_cutouts):
    """``detector+`` on the tiny sky: 3 test lenses cannot give a 95 % AUC bound above 0.5,
    so the blocking gate stops the run before the selection function (exit 1)."""
    home = with_cutouts
    r = _cli("materialize", "--profile", "tiny", "--select", "detector+", "--home", str(home), home=home)
    return home, r


def test_detector_artefacts_and_blocking_auc_gate(with_detector):
    import json

    import torch
    import torchvision

    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.detector.preprocess import raw_robust
    from lensaudit.auc import roc_auc

    home, r = with_detector
    out = r.stdout + r.stderr
    ev = json.loads((home / "assets/detector_evaluation/resnet18/evaluation.json").read_text())
    if ev["metrics"]["roc_auc"]["lo95"] <= 0.5:  # the tiny sky's expected case
        assert r.returncode == 1 and "detector_auc_better_than_chance" in out, out[-3000:]
        assert not (home / "assets" / "completeness_table").exists()
    else:
        assert r.returncode == 0, out[-3000:]
    info = json.loads((home / "assets/detector/resnet18/run_info.json").read_text())
    for key in ("git_commit", "utc_timestamp", "config", "config_sha256", "seeds", "manifest_sha256", "command",
                "library_versions", "device_name", "epochs_run", "best_epoch", "stop_reason", "train_images_per_s"):
        assert key in info and info[key] not in (None, ""), key
    # the independent check: plain weights-only load into torchvision, re-score the stored test cutouts
    model = torchvision.models.resnet18(num_classes=1)
    model.load_state_dict(torch.load(home / "assets/detector/resnet18/best.pt", weights_only=True))
    model.eval()
    man = pd.read_parquet(home / "assets/training_manifest")
    idx = pd.read_parquet(home / "assets/cutouts")
    test = idx[(idx.split == "test") & idx.cutout_ok].sort_values("galaxy_id")
    x, _ = raw_robust(CutoutReader(home / "cutout_store").read(test), crop=64)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).squeeze(1).numpy()
    y = test.galaxy_id.map(man.set_index("galaxy_id").label).to_numpy()
    assert abs(roc_auc(logits[y == 1], logits[y == 0]) - ev["metrics"]["roc_auc"]["value"]) < 1e-3
    assert ev["n_boot"] >= 1000 and ev["excluded_rows"] is not None
    assert set(ev["thresholds"]) == {"fpr0.01", "fpr0.001"}  # chosen on the validation split
    val = pd.read_parquet(home / "assets/detector_evaluation/resnet18/val_scores.parquet")
    assert set(val.split) == {"val"}
    assert ev["thresholds"]["fpr0.001"]["sufficient"] == bool((val.label == 0).sum() >= 1000)
    scored = pd.read_parquet(home / "assets/detector_evaluation/resnet18.parquet")
    assert set(scored.split) == {"test"} and len(scored) == len(test)
    assert str(home) not in json.dumps(ev) and "/tmp" not in json.dumps(ev)  # path-free


@pytest.fixture(scope="module")
def with_selection(with_detector):
    home, _ = with_detector
    r = _cli("materialize", "--profile", "tiny", "--select", "injection_hosts+", "--home", str(home), home=home)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    assert "audit report:" in r.stdout
    return home


def test_selection_function_outputs(with_selection):
    import numpy as np
    from scipy.stats import beta

    home = with_selection
    t = pd.read_parquet(home / "assets/completeness_table/data.parquet")
    csv = pd.read_csv(home / "assets/completeness_table/data.csv")
    assert len(t) == 385 == len(csv) and t.cell.is_unique and (t.schema_version == 2).all()
    assert (t.threshold_name == "fpr0.01").all()
    inner = (t.k > 0) & (t.k < t.n)
    lo, hi = beta.ppf(0.025, t.k + 1, t.n - t.k + 1), beta.ppf(0.975, t.k + 1, t.n - t.k + 1)
    assert np.allclose(lo[inner], t.lo95[inner]) and np.allclose(hi[inner], t.hi95[inner])
    assert (t.loc[(t.k == 0) & (t.n > 0), "lo95"] == 0).all() and np.allclose(csv.lo95, t.lo95)
    assert (t.sufficient == (t.n >= 200)).all() and not t.sufficient.any()  # tiny: 2 per cell
    inj = pd.read_parquet(home / "assets/completeness_injections")
    hosts = pd.read_parquet(home / "assets/injection_hosts")
    man = pd.read_parquet(home / "assets/training_manifest").set_index("galaxy_id")
    assert inj.galaxy_id.isin(hosts.galaxy_id).all() and len(inj) == t.n.sum() + t.n_host_fp.sum()
    assert (man.loc[hosts.galaxy_id, "split"] == "test").all() and (man.loc[hosts.galaxy_id, "label"] == 0).all()
    for col in ("theta_e_arcsec", "src_mag_r", "psf_fwhm_r_arcsec", "snr_combined", "arc_snr_matched", "logit",
                "host_logit", "observable", "host_use"):
        assert col in inj.columns
    assert (home / "assets/audit_report/audit_report.html").stat().st_size > 10000
    r = _cli("gates", "--home", str(home), home=home)
    for name in ("injection_hosts_held_out", "completeness_table_valid", "adversarial_null_controls",
                 "adversarial_synthetic_ring", "adversarial_arc_suppression", "adversarial_trend_theta_e"):
        line = [ln for ln in r.stdout.splitlines() if ln.startswith(name)][0]
        assert "not materialised" not in line, line
    assert "PASS" in [ln for ln in r.stdout.splitlines() if ln.startswith("injection_hosts_held_out")][0]
    assert "PASS" in [ln for ln in r.stdout.splitlines() if ln.startswith("completeness_table_valid")][0]


def test_completeness_is_deterministic(with_selection, tmp_path):
    """Re-materialising the table with the same seed gives the same bytes."""
    home = with_selection
    before = (home / "assets/completeness_table/data.parquet").read_bytes()
    inj_before = (home / "assets/completeness_injections/data.parquet").read_bytes()
    r = _cli("materialize", "--profile", "tiny", "--select", "completeness_table", "--home", str(home), home=home)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (home / "assets/completeness_table/data.parquet").read_bytes() == before
    assert (home / "assets/completeness_injections/data.parquet").read_bytes() == inj_before


def test_host_leak_fails_the_blocking_check(with_selection, tmp_path):
    import shutil

    home = tmp_path / "leak"
    shutil.copytree(with_selection, home)
    p = home / "assets/injection_hosts/data.parquet"
    hosts = pd.read_parquet(p)
    man = pd.read_parquet(home / "assets/training_manifest")
    train_row = man[(man.split == "train") & (man.label == 0)].iloc[[0]]
    leak = pd.concat([hosts, hosts.iloc[[0]].assign(galaxy_id=train_row.galaxy_id.iloc[0], split="test")],
                     ignore_index=True)
    leak.to_parquet(p, index=False)
    r = _cli("gates", "--home", str(home), home=home)
    assert r.returncode == 1
    assert "FAIL" in [ln for ln in r.stdout.splitlines() if ln.startswith("injection_hosts_held_out")][0]


def test_summary_reports_every_field(with_selection):
    """``lensaudit summary`` (what the README's demo figures are pasted from) names every field."""
    from lensaudit.summary import FIELDS

    home = with_selection
    r = _cli("summary", "--home", str(home), home=home)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {ln.split("|")[1].strip(): ln.split("|")[2].strip() for ln in r.stdout.splitlines() if ln.startswith("| ")}
    for f in FIELDS:
        assert f in rows, f
    assert rows["data_source"].startswith("mock") and rows["profile"] == "tiny"
    assert "summarised at" not in rows["commit"]  # built and summarised by the same code
    assert rows["test_auc"] != "n/a" and rows["injections"] != "n/a"
    assert (home / "assets/completeness_brackets/data.parquet").is_file()
    br = pd.read_parquet(home / "assets/completeness_brackets/data.parquet")
    assert set(br.variant) == {"baseline", "moffat_beta_2.5", "moffat_beta_4.5", "clumpy_sources", "suppress_inner"}


@pytest.mark.parametrize("plant", [None, "logits_raised", "matched_snr_x1000", "observable_flipped", "one_logit_forged"])
def test_injections_are_rederived_not_trusted(with_selection, tmp_path, plant):
    """``completeness_injections_rederived`` re-injects a sample on the CPU: injection logits
    raised by 1 (an 8x completeness on the demo), the matched S/N in the wrong units (002), an
    observable flag that is not its S/N rule, or one sampled injection's logit forged by +5 (the
    median does not move: the row bound) turn it red; the real tiny home is green; every new
    integrity gate is green on it too."""
    import shutil

    from lensaudit.config import get_profile
    from lensaudit.gates.registry import GATES, StoreView

    home = tmp_path / "h"
    shutil.copytree(with_selection, home)
    p = home / "assets/completeness_injections/data.parquet"
    inj = pd.read_parquet(p)
    import pyarrow.parquet as pq

    schema = pq.read_schema(p)
    if plant == "logits_raised":
        inj["logit"] += 1.0
    elif plant == "matched_snr_x1000":
        for c in ("arc_snr_matched", "arc_snr_matched_g", "arc_snr_matched_r", "arc_snr_matched_z", "snr_combined"):
            inj[c] *= 1000
    elif plant == "observable_flipped":
        inj.loc[inj.index[:3], "observable"] = ~inj.loc[inj.index[:3], "observable"]
    elif plant == "one_logit_forged":  # the first injection_id: always among the evenly spaced rows
        inj.loc[inj["injection_id"] == inj["injection_id"].min(), "logit"] += 5.0
    if plant:
        inj.to_parquet(p, index=False, schema=schema)
    view = StoreView(home, get_profile("tiny"))
    by = {g.name: g for g in GATES}
    res = by["completeness_injections_rederived"].evaluate(view)
    assert res.passed == (plant is None), res.details
    if plant == "one_logit_forged":
        assert res.details["logit_rows_beyond_row_tol"] == 1 and abs(res.details["logit_median_shift"]) <= 0.1
    if plant is None:
        for name in ("detector_evaluation_recomputed", "detector_scored_rows_match_manifest", "detector_logits_rescored",
                     "shortcut_features_recomputed", "manifest_positives_are_known_lenses",
                     "detector_artefact_hashes_match"):
            r = by[name].evaluate(view)
            assert r.passed, (name, r.details)


@pytest.mark.parametrize("plant", [None, "ring_top_logit_lowered", "suppression_faked", "null_controls_lowered",
                                   "host_logit_forged", "null_host_from_train"])
def test_adversarial_scores_are_rescored_not_trusted(with_selection, tmp_path, plant):
    """``adversarial_scores_rescored`` re-scores every adversarial row with the checkpoint (null
    controls re-injected on a sample): the ring's highest logit lowered by 1 (one row, the one a
    forger would move), arc suppression faked (every suppressed lens 2 below its logit), the null
    controls lowered by 4 (a finder that looks blind to noise), a plain host's logit forged, or a
    null control moved onto a training negative (not a host of the null plan) turn it red; the
    real tiny home is green."""
    import shutil

    import pyarrow.parquet as pq

    from lensaudit.config import get_profile
    from lensaudit.gates.registry import GATES, StoreView

    home = tmp_path / "h"
    shutil.copytree(with_selection, home)
    p = home / "assets/adversarial_scores/data.parquet"
    adv, schema = pd.read_parquet(p), pq.read_schema(p)
    first = {t: adv.loc[adv["test"] == t, "galaxy_id"].min() for t in set(adv["test"])}  # always sampled
    if plant == "ring_top_logit_lowered":  # the one row a ring gate would count, wherever the sample falls
        ring = adv.index[adv["test"] == "synthetic_ring"]
        adv.loc[adv.loc[ring, "logit_after"].idxmax(), "logit_after"] -= 1.0
    elif plant == "suppression_faked":
        sup = adv["test"] == "arc_suppression"
        assert sup.any()
        adv.loc[sup, "logit_after"] = adv.loc[sup, "logit_before"] - 2.0
    elif plant == "null_controls_lowered":
        adv.loc[adv["test"] == "null_control", "logit_after"] -= 4.0
    elif plant == "host_logit_forged":
        adv.loc[(adv["test"] == "null_control") & (adv["galaxy_id"] == first["null_control"]), "logit_before"] -= 1.0
    elif plant == "null_host_from_train":
        man = pd.read_parquet(home / "assets/training_manifest")
        train = man.loc[(man.split == "train") & (man.label == 0), "galaxy_id"].iloc[0]
        null = adv.index[adv["test"] == "null_control"]
        adv.loc[null[len(null) // 2], "galaxy_id"] = train
    if plant:
        adv.to_parquet(p, index=False, schema=schema)
    gate = {g.name: g for g in GATES}["adversarial_scores_rescored"]
    res = gate.evaluate(StoreView(home, get_profile("tiny")))
    assert res.passed == (plant is None), res.details



@pytest.mark.parametrize("plant", [None, "table_k_raised", "record_dropped", "host_logit_changed",
                                   "variant_lowered_consistently", "one_sampled_logit_forged", "observable_flipped"])
def test_brackets_are_recomputed_not_trusted(with_selection, tmp_path, plant):
    """``completeness_brackets_recomputed``: a bracket table's k raised in one cell, a baseline
    record dropped, a record's host logit changed, the suppress_inner variant's logits lowered by 2
    with its table recomputed to match (a consistent forgery), one sampled record's logit forged
    by +5, or its observable flag flipped turn it red; the real tiny home is green."""
    import shutil

    import pyarrow.parquet as pq

    from lensaudit.config import get_profile
    from lensaudit.gates.gate_spec import StoreView
    from lensaudit.gates.registry import GATES
    from lensaudit.gates.selection_gates import operating_threshold
    from lensaudit.selection.run import bracket_tables

    home = tmp_path / "h"
    shutil.copytree(with_selection, home)
    rp, tp = home / "assets/completeness_bracket_records/data.parquet", home / "assets/completeness_brackets/data.parquet"
    rec, table = pd.read_parquet(rp), pd.read_parquet(tp)
    first = rec["injection_id"].min()  # always among the evenly spaced rows
    if plant == "table_k_raised":
        i = table.index[(table["variant"] == "clumpy_sources") & (table["n"] > table["k"])][0]
        table.loc[i, "k"] += 1
    elif plant == "record_dropped":
        rec = rec.drop(rec.index[rec["variant"] == "baseline"][-1])
    elif plant == "host_logit_changed":
        rec.loc[rec.index[rec["variant"] == "moffat_beta_4.5"][3], "host_logit"] -= 0.5
    elif plant == "variant_lowered_consistently":
        rec.loc[rec["variant"] == "suppress_inner", "logit"] -= 2.0
        thr = operating_threshold(StoreView(home, get_profile("tiny")))
        table = bracket_tables(rec, thr, get_profile("tiny").selection.seed)
    elif plant == "one_sampled_logit_forged":
        rec.loc[(rec["variant"] == "baseline") & (rec["injection_id"] == first), "logit"] += 5.0
    elif plant == "observable_flipped":
        at = (rec["variant"] == "moffat_beta_2.5") & (rec["injection_id"] == first)
        rec.loc[at, "observable"] = ~rec.loc[at, "observable"]
    if plant:
        rec.to_parquet(rp, index=False, schema=pq.read_schema(rp))
        table.to_parquet(tp, index=False, schema=pq.read_schema(tp))
    gate = {g.name: g for g in GATES}["completeness_brackets_recomputed"]
    res = gate.evaluate(StoreView(home, get_profile("tiny")))
    assert res.passed == (plant is None), res.details
