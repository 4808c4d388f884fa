"""The whole data half through Dagster on the tiny profile, twice, in two temp homes."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.dagster
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
    r = _cli("materialize", "--profile", "tiny", "--select", "cutouts+", "--home", str(home), home=home)
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
                 "realism_arc_snr_median", "realism_colour_g_r", "realism_background_ks_r"):
        line = [ln for ln in r.stdout.splitlines() if ln.startswith(name)][0]
        assert "not materialised" not in line
    assert "PASS" in [ln for ln in r.stdout.splitlines() if ln.startswith("cutouts_complete")][0]
    rec = pd.read_parquet(home / "assets" / "injection_realism")
    inj = rec[rec.kind == "injected"]
    assert len(inj) == 100 and (inj.magnification > 1).all() and inj.galaxy_id.isin(idx[idx.split == "test"].galaxy_id).all()
    assert (rec.kind == "real").sum() >= 5
