"""Integrity gates: each red on a planted fault, green on a healthy tiny home; and
``lensaudit gates`` survives any single broken artefact."""

import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from lensaudit.config import get_profile
from lensaudit.cutouts.qc import quality
from lensaudit.cutouts.store import write_shard
from lensaudit.gates import integrity_gates as ig
from lensaudit.gates.registry import GATES, StoreView
from lensaudit.spark_jobs.cutouts import INDEX_SCHEMA
from lensaudit.store import file_sha256, write_parquet_atomic

N = 12
CUTOUT_GATES = ("cutout_index_links_valid", "cutout_shards_match_content_hash", "cutout_qc_recomputed")
DETECTOR_GATES = ("detector_artefact_hashes_match", "detector_auc_recomputed", "detector_logits_rescored")


def _stamps(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.01, (n, 3, 101, 101)).astype(np.float32)
    x[:, :, 45:56, 45:56] += rng.uniform(0.02, 0.2, (n, 3, 1, 1)).astype(np.float32)  # a galaxy-ish core
    return x


def _write_store(home, stamps, shard_rows=8, index_stats_from=None):
    """Shards named by content hash like spark_jobs.cutouts, and the index with QC
    columns (computed from ``index_stats_from`` if given: a planted lie)."""
    store = home / "cutout_store"
    records, src = [], stamps if index_stats_from is None else index_stats_from
    for k in range(0, len(stamps), shard_rows):
        chunk = stamps[k:k + shard_rows]
        rel = f"shards/sweep-a-{k // shard_rows:04d}-{hashlib.sha256(chunk.tobytes()).hexdigest()[:16]}.npy"
        write_shard(store / rel, chunk)
        for off in range(len(chunk)):
            i = k + off
            qc = quality(src[i], "grz")
            rec = {"galaxy_id": f"g{i:03d}", "sweep": "sweep-a.fits", "brickname": "b", "ra": float(i), "dec": 0.0,
                   "label": int(i % 3 == 0), "split": "test", "cutout_path": rel, "cutout_offset": off,
                   "cutout_ok": bool(qc["qc_ok"]), "fail_reason": "" if qc["qc_ok"] else f"qc: {qc['qc_reason']}",
                   "bands": "grz"}
            rec.update({c: v for c, v in qc.items() if c in INDEX_SCHEMA.names})
            records.append(rec)
    records.append({"galaxy_id": "gfail", "sweep": "sweep-a.fits", "brickname": "b", "ra": 0.0, "dec": 0.0, "label": 0,
                    "split": "test", "cutout_path": "", "cutout_offset": -1, "cutout_ok": False,
                    "fail_reason": "source: missing_band_g", "bands": "grz"})
    index = pd.DataFrame(records, columns=INDEX_SCHEMA.names)
    _write_index(home, index)
    return index


def _write_index(home, index):
    write_parquet_atomic(index, home / "assets" / "cutouts" / "sweep-a.parquet", schema=INDEX_SCHEMA)


def _view(home):
    return StoreView(home, get_profile("tiny"))


def _run(home, names):
    v = _view(home)
    by = {g.name: g for g in GATES}
    return {n: by[n].evaluate(v) for n in names}


def test_integrity_gates_are_registered_error_and_blocking():
    by = {g.name: g for g in GATES}
    for n in CUTOUT_GATES + DETECTOR_GATES:
        assert by[n].severity == "ERROR" and by[n].blocking


def test_cutout_gates_green_on_a_healthy_store(tmp_path):
    _write_store(tmp_path, _stamps())
    res = _run(tmp_path, CUTOUT_GATES)
    assert all(r.passed for r in res.values()), {n: r.details for n, r in res.items()}
    assert res["cutout_qc_recomputed"].details["rows_checked"] == N


def test_shard_bytes_changed_is_red(tmp_path):
    idx = _write_store(tmp_path, _stamps())
    shard = tmp_path / "cutout_store" / idx["cutout_path"].iloc[0]
    arr = np.load(shard)
    arr[2, 1, 50, 50] += 1.0  # one pixel of one stamp
    np.save(shard, arr)
    res = _run(tmp_path, CUTOUT_GATES)
    assert not res["cutout_shards_match_content_hash"].passed
    assert res["cutout_shards_match_content_hash"].details["mismatched"] == 1
    # (one pixel above p99 leaves the QC percentiles unchanged: the content hash is what catches it)


def test_offset_shifted_by_one_is_red(tmp_path):
    idx = _write_store(tmp_path, _stamps())
    idx.loc[idx["galaxy_id"] == "g003", "cutout_offset"] = 4  # now points at g004's stamp
    _write_index(tmp_path, idx)
    res = _run(tmp_path, CUTOUT_GATES)
    assert res["cutout_shards_match_content_hash"].passed  # the bytes are fine
    assert not res["cutout_index_links_valid"].passed  # two rows, one stamp
    qc = res["cutout_qc_recomputed"]
    assert not qc.passed and "g003" in qc.details["examples"]
    # every row of a shard shifted by one: no duplicate pointer, still red
    idx = _write_store(tmp_path, _stamps())
    first = idx["cutout_path"] == idx["cutout_path"].iloc[0]
    idx.loc[first, "cutout_offset"] = (idx.loc[first, "cutout_offset"] + 1) % 8
    _write_index(tmp_path, idx)
    assert not _run(tmp_path, ["cutout_qc_recomputed"])["cutout_qc_recomputed"].passed


@pytest.mark.parametrize("plant", ["all_nan", "zero_band"])
def test_stamp_that_fails_qc_behind_an_ok_index_row_is_red(tmp_path, plant):
    good = _stamps()
    bad = good.copy()
    if plant == "all_nan":
        bad[5] = np.nan
    else:
        bad[5, 2] = 0.0
    _write_store(tmp_path, bad, index_stats_from=good)  # the index claims g005 is fine
    res = _run(tmp_path, CUTOUT_GATES)
    assert res["cutout_shards_match_content_hash"].passed
    qc = res["cutout_qc_recomputed"]
    assert not qc.passed and "g005" in qc.details["examples"]


@pytest.mark.parametrize("column,rel,red", [
    ("p50_r", 1e-7, False), ("p50_r", 1e-3, True), ("p1_g", 2e-3, True), ("p99_z", -2e-3, True),
    ("mad_g", 1e-7, False), ("mad_g", 1e-3, True), ("mad_z", -1e-3, True)])
def test_qc_statistic_nudged_beyond_its_tolerance_is_red(tmp_path, column, rel, red):
    """The gate verifies each order statistic by counting (its k-th pixel inside the index value's
    tolerance, rtol QC_RTOL): a nudge of 1e-7 (float rounding) passes, 1e-3 is red with the column
    named; a p50 that is not exactly a pixel any more still lets the MAD be verified."""
    idx = _write_store(tmp_path, _stamps())
    i = idx.index[idx["galaxy_id"] == "g004"][0]
    idx.loc[i, column] = idx.loc[i, column] * (1 + rel)
    _write_index(tmp_path, idx)
    qc = _run(tmp_path, ["cutout_qc_recomputed"])["cutout_qc_recomputed"]
    assert qc.passed is not red, qc.details
    if red:
        assert qc.details["mismatched"] == 1 and qc.details["examples"]["g004"].startswith(f"{column}: index")


def test_qc_of_stamps_whose_percentiles_are_not_pixels_is_recomputed():
    """An even stamp size (n = 100^2: p1, p50, p99 interpolate between pixels) takes the
    recomputing path: the index's own values verify, a nudged one does not."""
    from lensaudit.gates.integrity_gates import _check_qc_block

    rng = np.random.default_rng(5)
    stamps = rng.normal(0, 0.01, (6, 3, 100, 100)).astype(np.float32) + 0.05
    rows = pd.DataFrame([{"galaxy_id": f"e{i}", **quality(s, "grz", 100)} for i, s in enumerate(stamps)])
    assert _check_qc_block(rows, stamps, "grz") == {}
    rows.loc[2, "p99_g"] *= 1.001
    rows.loc[4, "mad_r"] *= 0.999
    assert sorted(_check_qc_block(rows, stamps, "grz")) == ["e2", "e4"]


@pytest.mark.parametrize("plant", ["negative_offset", "past_end", "escape", "missing_shard", "failed_row_linked"])
def test_broken_links_are_red(tmp_path, plant):
    idx = _write_store(tmp_path, _stamps())
    i = idx.index[idx["galaxy_id"] == "g001"][0]
    if plant == "negative_offset":
        idx.loc[i, "cutout_offset"] = -1
    elif plant == "past_end":
        idx.loc[i, "cutout_offset"] = 99
    elif plant == "escape":
        idx.loc[i, "cutout_path"] = "../outside.npy"
    elif plant == "missing_shard":
        idx.loc[i, "cutout_path"] = "shards/sweep-a-0009-0123456789abcdef.npy"
    else:
        idx.loc[idx["galaxy_id"] == "gfail", "cutout_offset"] = 0
    _write_index(tmp_path, idx)
    res = _run(tmp_path, CUTOUT_GATES)
    assert not res["cutout_index_links_valid"].passed, res["cutout_index_links_valid"].details
    if plant != "failed_row_linked":
        assert not res["cutout_qc_recomputed"].passed  # the unreadable row cannot be verified


# ---- detector --------------------------------------------------------------------------


def _detector_home(home, seed=0):
    """A home with a stored (untrained, seeded) resnet18, its run_info, the scored test
    table and evaluation.json, as detector.run / evaluation.run write them."""
    from lensaudit.detector.models import build_model, save_checkpoint
    from lensaudit.detector.preprocess import raw_robust
    from lensaudit.detector.run import detector_dir, training_input_hashes, write_json_atomic
    from lensaudit.detector.train import predict
    from lensaudit.auc import roc_auc
    from lensaudit.evaluation.metrics import sigmoid
    from lensaudit.evaluation.run import evaluation_json_path
    from lensaudit.store import partition_file

    stamps = _stamps()
    idx = _write_store(home, stamps)
    torch.manual_seed(seed)
    model = build_model("resnet18").eval()
    d = detector_dir(home, "resnet18")
    digest = save_checkpoint(model, d / "best.pt")
    write_json_atomic({"checkpoint_sha256": digest, "config": {"train": {"crop": 64}}, **training_input_hashes(home)},
                      d / "run_info.json")
    ok = idx[idx["cutout_ok"]]
    x, _ = raw_robust(stamps, crop=64)
    logits = predict(model, x, "cpu", bf16=False)
    scored = pd.DataFrame({"galaxy_id": ok["galaxy_id"].to_numpy(), "label": ok["label"].to_numpy(), "split": "test",
                           "logit": logits, "probability": sigmoid(logits)})
    table = write_parquet_atomic(scored, partition_file(home, "detector_evaluation", "resnet18"))
    from lensaudit.evaluation.run import val_scores_path

    write_parquet_atomic(scored.iloc[0:0], val_scores_path(home, "resnet18"))  # an empty validation split
    y = scored["label"].to_numpy()
    report = {"metrics": {"roc_auc": {"value": roc_auc(logits[y == 1], logits[y == 0])}},
              "checkpoint_sha256": digest, "scored_table_sha256": file_sha256(table), "scored_on_device": "cpu"}
    write_json_atomic(report, evaluation_json_path(home, "resnet18"))
    return d, table, report


def _rehash_report(home, table):
    from lensaudit.evaluation.run import evaluation_json_path

    p = evaluation_json_path(home, "resnet18")
    rep = json.loads(p.read_text())
    rep["scored_table_sha256"] = file_sha256(table)
    p.write_text(json.dumps(rep))


def test_detector_gates_green_on_a_healthy_home(tmp_path):
    _detector_home(tmp_path)
    res = _run(tmp_path, DETECTOR_GATES)
    assert all(r.passed for r in res.values()), {n: r.details for n, r in res.items()}
    assert res["detector_logits_rescored"].details["resnet18"]["test"]["rows"] == N
    assert res["detector_logits_rescored"].metric < 1e-3


@pytest.mark.parametrize("plant", ["nan", "random", "random_rehashed"])
def test_swapped_or_nan_checkpoint_is_red(tmp_path, plant):
    from lensaudit.detector.models import build_model

    d, _, _ = _detector_home(tmp_path)
    torch.manual_seed(123)
    state = build_model("resnet18").state_dict()
    if plant == "nan":
        state["fc.weight"].fill_(float("nan"))
    torch.save(state, d / "best.pt")  # written around save_checkpoint, as a tampering would be
    if plant == "random_rehashed":  # the records were rewritten too: only re-scoring can tell
        for name in ("run_info.json",):
            info = json.loads((d / name).read_text())
            info["checkpoint_sha256"] = file_sha256(d / "best.pt")
            (d / name).write_text(json.dumps(info))
        from lensaudit.evaluation.run import evaluation_json_path

        p = evaluation_json_path(tmp_path, "resnet18")
        rep = json.loads(p.read_text())
        rep["checkpoint_sha256"] = file_sha256(d / "best.pt")
        p.write_text(json.dumps(rep))
    res = _run(tmp_path, DETECTOR_GATES)
    assert res["detector_artefact_hashes_match"].passed == (plant == "random_rehashed")
    assert not res["detector_logits_rescored"].passed, res["detector_logits_rescored"].details
    assert res["detector_auc_recomputed"].passed  # the table itself was not touched


def test_permuted_logits_are_red(tmp_path):
    from lensaudit.store import partition_file

    _detector_home(tmp_path)
    table = partition_file(tmp_path, "detector_evaluation", "resnet18")
    scored = pd.read_parquet(table)
    scored["logit"] = scored["logit"].to_numpy()[::-1]
    write_parquet_atomic(scored, table)
    res = _run(tmp_path, DETECTOR_GATES)
    assert not res["detector_artefact_hashes_match"].passed  # the table changed after evaluation
    assert not res["detector_auc_recomputed"].passed
    assert not res["detector_logits_rescored"].passed
    _rehash_report(tmp_path, table)  # a consistent forgery of the hash: still caught by recomputation
    res = _run(tmp_path, DETECTOR_GATES)
    assert res["detector_artefact_hashes_match"].passed
    assert not res["detector_auc_recomputed"].passed and not res["detector_logits_rescored"].passed


def test_stored_auc_that_disagrees_with_the_table_is_red(tmp_path):
    from lensaudit.evaluation.run import evaluation_json_path

    _detector_home(tmp_path)
    p = evaluation_json_path(tmp_path, "resnet18")
    rep = json.loads(p.read_text())
    rep["metrics"]["roc_auc"]["value"] = 0.99
    p.write_text(json.dumps(rep))
    assert not _run(tmp_path, ["detector_auc_recomputed"])["detector_auc_recomputed"].passed


def test_missing_records_cannot_be_verified_and_fail(tmp_path):
    d, _, _ = _detector_home(tmp_path)
    (d / "run_info.json").write_text(json.dumps({"config": {"train": {"crop": 64}}}))  # no checkpoint_sha256
    res = _run(tmp_path, ["detector_artefact_hashes_match"])["detector_artefact_hashes_match"]
    assert not res.passed and "not recorded" in str(res.details)


@pytest.mark.parametrize("plant", [None, "train_row_to_val", "train_pointers_swapped", "index_partition_deleted",
                                   "inputs_not_recorded"])
def test_a_manifest_or_index_changed_after_training_is_red(tmp_path, plant):
    """The detector records the sha256 of the manifest and cutout index it trained on; a training
    row moved to another split, two stamp pointers swapped (QC columns and all: the cutout gates
    stay green), a partition file of the index deleted, or no record at all, turns
    ``detector_artefact_hashes_match`` red, though no test or validation row changed."""
    from lensaudit.detector.run import detector_dir

    _evaluated_home(tmp_path)
    man_file = tmp_path / "assets" / "training_manifest" / "data.parquet"
    man = pd.read_parquet(man_file)
    train = pd.DataFrame({**{c: man[c].iloc[:2].to_numpy() for c in man.columns}, "galaxy_id": ["t0", "t1"],
                          "split": "train", "healpix_128": 9})
    write_parquet_atomic(pd.concat([man, train], ignore_index=True), man_file)
    idx = pd.read_parquet(tmp_path / "assets" / "cutouts" / "sweep-a.parquet")
    stamps = _stamps(2, seed=1)
    rel = f"shards/sweep-b-0000-{hashlib.sha256(stamps.tobytes()).hexdigest()[:16]}.npy"
    write_shard(tmp_path / "cutout_store" / rel, stamps)
    extra = idx[idx["cutout_ok"]].iloc[:2].assign(galaxy_id=["t0", "t1"], sweep="sweep-b.fits", split="train",
                                                  cutout_path=rel, cutout_offset=[0, 1])
    for i, q in enumerate(quality(x, "grz") for x in stamps):
        extra.loc[extra.index[i], [c for c in q if c in INDEX_SCHEMA.names]] = [q[c] for c in q if c in INDEX_SCHEMA.names]
    write_parquet_atomic(extra, tmp_path / "assets" / "cutouts" / "sweep-b.parquet", schema=INDEX_SCHEMA)
    d = detector_dir(tmp_path, "resnet18")
    info = json.loads((d / "run_info.json").read_text())
    from lensaudit.detector.run import training_input_hashes

    info.update(training_input_hashes(tmp_path))  # trained on the manifest and index with the train rows
    (d / "run_info.json").write_text(json.dumps(info))
    gate = "detector_artefact_hashes_match"
    healthy = _run(tmp_path, (gate,) + CUTOUT_GATES)
    assert all(r.passed for r in healthy.values()), {n: r.details for n, r in healthy.items() if not r.passed}
    if plant == "train_row_to_val":
        m = pd.read_parquet(man_file)
        m.loc[m["galaxy_id"] == "t0", "split"] = "val"
        write_parquet_atomic(m, man_file)
    elif plant == "train_pointers_swapped":
        f = tmp_path / "assets" / "cutouts" / "sweep-b.parquet"
        e = pd.read_parquet(f)
        moved = [c for c in e.columns if c not in ("galaxy_id", "sweep", "brickname", "ra", "dec", "label", "split")]
        e.loc[:, moved] = e.loc[::-1, moved].to_numpy()
        write_parquet_atomic(e, f, schema=INDEX_SCHEMA)
        assert all(r.passed for r in _run(tmp_path, CUTOUT_GATES).values())  # the store itself is consistent
    elif plant == "index_partition_deleted":
        (tmp_path / "assets" / "cutouts" / "sweep-b.parquet").unlink()
    elif plant == "inputs_not_recorded":
        del info["manifest_sha256"], info["cutout_index_sha256"]
        (d / "run_info.json").write_text(json.dumps(info))
    res = _run(tmp_path, [gate])[gate]
    assert res.passed == (plant is None), res.details
    if plant:
        want = "manifest_sha256" if plant == "train_row_to_val" else "cutout_index_sha256"
        assert want in str(res.details["resnet18"]), res.details


# ---- lensaudit gates survives a broken artefact -----------------------------------------


@pytest.fixture()
def cli_env(monkeypatch):
    for k in ("LENSAUDIT_HOME", "LENSAUDIT_PROFILE", "DAGSTER_HOME"):
        monkeypatch.setenv(k, os.environ.get(k, ""))


def _gates_cli(home, capsys):
    from lensaudit_cli.main import main

    (home / "run_profile.json").write_text(json.dumps({"profile": "tiny"}))
    rc = main(["gates", "--home", str(home)])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("plant", ["truncated_parquet", "bad_shard_path", "corrupt_checkpoint", "garbage_json"])
def test_gates_command_survives_one_broken_artefact(tmp_path, capsys, cli_env, plant):
    from lensaudit.evaluation.run import evaluation_json_path

    d, _, _ = _detector_home(tmp_path)
    if plant == "truncated_parquet":
        p = tmp_path / "assets" / "cutouts" / "sweep-a.parquet"
        p.write_bytes(p.read_bytes()[:200])
    elif plant == "bad_shard_path":
        idx = pd.read_parquet(tmp_path / "assets" / "cutouts" / "sweep-a.parquet")
        idx.loc[0, "cutout_path"] = "shards/\nevil.npy"
        _write_index(tmp_path, idx)
    elif plant == "corrupt_checkpoint":
        (d / "best.pt").write_bytes((d / "best.pt").read_bytes()[:1000])
    else:
        evaluation_json_path(tmp_path, "resnet18").write_text("{not json")
    rc, out, err = _gates_cli(tmp_path, capsys)
    assert rc == 1 and "Traceback" not in err
    lines = {ln.split()[0]: ln for ln in out.splitlines()[2:] if ln.strip()}
    assert set(lines) == {g.name for g in GATES}  # the whole table
    broken = {"truncated_parquet": "cutout_qc_recomputed", "bad_shard_path": "cutout_index_links_valid",
              "corrupt_checkpoint": "detector_logits_rescored", "garbage_json": "detector_auc_recomputed"}[plant]
    assert " FAIL " in lines[broken]
    if plant == "corrupt_checkpoint":
        assert " FAIL " in lines["detector_artefact_hashes_match"]


def test_gates_of_an_asset_removed_below_a_stored_one_fail(tmp_path, capsys, cli_env):
    """A partial home leaves the gates of what is not stored unevaluated; an asset removed while
    an asset downstream of it is stored (the scored table gone, the index gone) fails its gates."""
    from lensaudit.store import partition_file

    _detector_home(tmp_path)
    partition_file(tmp_path, "detector_evaluation", "resnet18").unlink()  # the scored table: the gates' input
    (tmp_path / "assets" / "completeness_table").mkdir(parents=True)
    write_parquet_atomic(pd.DataFrame({"cell": [0]}), tmp_path / "assets" / "completeness_table" / "data.parquet")
    rc, out, err = _gates_cli(tmp_path, capsys)
    lines = {ln.split()[0]: ln for ln in out.splitlines()[2:] if ln.strip()}
    assert rc == 1 and "Traceback" not in err
    for gate in DETECTOR_GATES:
        assert " FAIL " in lines[gate], lines[gate]
    assert "detector_evaluation is not stored although completeness_table (downstream of it) is" in err
    partial = tmp_path / "partial"
    _write_store(partial, _stamps())  # only the cutouts: nothing downstream is stored
    rc, out, err = _gates_cli(partial, capsys)
    lines = {ln.split()[0]: ln for ln in out.splitlines()[2:] if ln.strip()}
    assert all(" FAIL " not in lines[g] for g in DETECTOR_GATES + CUTOUT_GATES), out
    (partial / "assets" / "cutouts" / "sweep-a.parquet").unlink()
    write_parquet_atomic(pd.DataFrame({"galaxy_id": ["x"]}), partial / "assets" / "shortcut_features" / "data.parquet")
    rc, out, err = _gates_cli(partial, capsys)
    lines = {ln.split()[0]: ln for ln in out.splitlines()[2:] if ln.strip()}
    assert rc == 1 and all(" FAIL " in lines[g] for g in CUTOUT_GATES), out


def test_gates_command_on_a_corrupt_run_profile_is_a_clear_error(tmp_path, capsys, cli_env):
    from lensaudit_cli.main import main

    (tmp_path / "run_profile.json").write_text("{oops")
    assert main(["gates", "--home", str(tmp_path)]) == 2
    assert "cannot open the home" in capsys.readouterr().err


def _evaluated_home(tmp_path):
    """A home evaluated by the real ``evaluate_detector`` (12 test stamps, an untrained seeded
    resnet18, a manifest, shortcut features): (report, digest)."""
    from lensaudit.cutouts.features import FEATURES
    from lensaudit.detector.models import build_model, save_checkpoint
    from lensaudit.detector.run import detector_dir, training_input_hashes, write_json_atomic
    from lensaudit.evaluation.run import evaluate_detector

    idx = _write_store(tmp_path, _stamps())
    ok = idx[idx["cutout_ok"]]
    n = len(ok)
    man = pd.DataFrame({"galaxy_id": ok["galaxy_id"].to_numpy(), "label": ok["label"].to_numpy(),
                        "tier": np.where(ok["label"] == 1, "A", "N1"), "pool": np.where(ok["label"] == 1, "pos", "N1"),
                        "confuser_category": None, "split": np.where(np.arange(n) < 8, "test", "val"),
                        "sample_weight": 1.0, "healpix_128": np.where(np.arange(n) < 8, 7, 8),
                        "psfsize_r": 1.2, "psfdepth_r": 400.0, "nobs_z": 3, "nobs_z_bin": "3-4"})
    write_parquet_atomic(man, tmp_path / "assets" / "training_manifest" / "data.parquet")
    rng = np.random.default_rng(0)
    feats = pd.DataFrame(rng.normal(size=(n + 20, len(FEATURES))), columns=list(FEATURES))
    feats.insert(0, "split", ["test"] * n + ["train"] * 20)
    feats.insert(0, "label", np.r_[ok["label"].to_numpy(), np.arange(20) % 2])
    feats.insert(0, "galaxy_id", [*ok["galaxy_id"], *(f"t{i}" for i in range(20))])
    write_parquet_atomic(feats, tmp_path / "assets" / "shortcut_features" / "data.parquet")
    torch.manual_seed(0)
    d = detector_dir(tmp_path, "resnet18")
    digest = save_checkpoint(build_model("resnet18"), d / "best.pt")
    write_json_atomic({"checkpoint_sha256": digest, "config": {"train": {"crop": 64}}, "config_sha256": "c",
                       "git_commit": "g", **training_input_hashes(tmp_path)}, d / "run_info.json")
    report, _ = evaluate_detector(tmp_path, get_profile("tiny"), "resnet18", "cpu")
    return report, digest


MODEL_GATES = ("detector_evaluation_recomputed", "detector_auc_better_than_chance")


def test_evaluate_detector_records_what_the_gates_verify(tmp_path):
    """The real evaluation path writes checkpoint / scored-table sha256s and the device;
    all integrity gates pass on its output, and a later edit of the table turns them red."""
    from lensaudit.store import partition_file

    report, digest = _evaluated_home(tmp_path)
    table = partition_file(tmp_path, "detector_evaluation", "resnet18")
    assert report["checkpoint_sha256"] == digest and report["scored_on_device"] == "cpu"
    assert report["scored_table_sha256"] == file_sha256(table)
    res = _run(tmp_path, CUTOUT_GATES + DETECTOR_GATES)
    assert all(r.passed for r in res.values()), {k: r.details for k, r in res.items() if not r.passed}
    assert _run(tmp_path, MODEL_GATES)["detector_evaluation_recomputed"].passed
    s = pd.read_parquet(table)
    s.loc[0, "logit"] += 3.0
    write_parquet_atomic(s, table)
    res = _run(tmp_path, DETECTOR_GATES + MODEL_GATES)
    assert not res["detector_artefact_hashes_match"].passed and not res["detector_logits_rescored"].passed
    assert not res["detector_evaluation_recomputed"].passed  # the stored metrics are not the table's


@pytest.mark.parametrize("plant", ["label_swapped", "tier_promoted", "row_dropped", "row_added", "val_relabelled"])
def test_scored_rows_that_are_not_the_manifests_are_red(tmp_path, plant):
    """The scored test / validation rows must be the manifest's split rows with the manifest's
    label and tier: a relabelled, promoted, dropped or foreign row turns the gate red even with
    the table's hash and the evaluation rewritten to match (a consistent forgery)."""
    from lensaudit.evaluation.run import evaluation_json_path, val_scores_path
    from lensaudit.store import partition_file

    _evaluated_home(tmp_path)
    gate = "detector_scored_rows_match_manifest"
    assert _run(tmp_path, [gate])[gate].passed, _run(tmp_path, [gate])[gate].details
    table = val_scores_path(tmp_path, "resnet18") if plant == "val_relabelled" else \
        partition_file(tmp_path, "detector_evaluation", "resnet18")
    t = pd.read_parquet(table)
    if plant in ("label_swapped", "val_relabelled"):
        i, j = t.index[t["label"] == 1][0], t.index[t["label"] == 0][0]
        t.loc[[i, j], "label"] = t.loc[[j, i], "label"].to_numpy()
    elif plant == "tier_promoted":
        t.loc[t.index[t["label"] == 0][0], "tier"] = "A"
    elif plant == "row_dropped":
        t = t[t["galaxy_id"] != t.loc[t["label"] == 1, "galaxy_id"].iloc[0]]
    else:
        t = pd.concat([t, t.iloc[[0]].assign(galaxy_id="g999")], ignore_index=True)
    write_parquet_atomic(t, table)
    p = evaluation_json_path(tmp_path, "resnet18")
    rep = json.loads(p.read_text())
    rep["scored_table_sha256"] = file_sha256(partition_file(tmp_path, "detector_evaluation", "resnet18"))
    p.write_text(json.dumps(rep))
    res = _run(tmp_path, [gate, "detector_artefact_hashes_match"])
    assert res["detector_artefact_hashes_match"].passed  # the forgery re-hashed the table
    assert not res[gate].passed and res[gate].metric >= 1, res[gate].details


@pytest.mark.parametrize("plant", ["test_positive_raised", "val_negatives_lowered"])
def test_rescoring_checks_every_positive_and_the_validation_scores(tmp_path, plant):
    """A forged logit on a positive the old fixed sample would have skipped, and validation
    negatives lowered to move the operating thresholds, are re-scored and caught."""
    from lensaudit.evaluation.run import val_scores_path
    from lensaudit.store import partition_file

    _evaluated_home(tmp_path)
    gate = "detector_logits_rescored"
    res = _run(tmp_path, [gate])[gate]
    assert res.passed and res.details["resnet18"]["val"]["rows"] == 4, res.details
    if plant == "test_positive_raised":
        table = partition_file(tmp_path, "detector_evaluation", "resnet18")
        t = pd.read_parquet(table)
        t.loc[t.index[t["label"] == 1][-1], "logit"] += 6.0
    else:
        table = val_scores_path(tmp_path, "resnet18")
        t = pd.read_parquet(table)
        t.loc[t["label"] == 0, "logit"] -= 0.5
    write_parquet_atomic(t, table)
    res = _run(tmp_path, [gate])[gate]
    split = "test" if plant == "test_positive_raised" else "val"
    assert not res.passed and res.details["resnet18"][split]["outside_tolerance"] >= 1, res.details


def test_the_rescoring_sample_holds_every_positive_and_random_negatives():
    rows = pd.DataFrame({"galaxy_id": [f"g{i:04d}" for i in range(1000)], "label": (np.arange(1000) % 50 == 0).astype(int)})
    a = ig._sample(rows, 16, np.random.default_rng(1))
    b = ig._sample(rows, 16, np.random.default_rng(2))
    assert (a["label"] == 1).sum() == 20 and len(a) == 20 + 32 and a["galaxy_id"].is_unique
    fixed = set(a["galaxy_id"]) & set(b["galaxy_id"])
    assert len(fixed) < len(a)  # the random half differs between draws
    small = ig._sample(rows.iloc[:30], 16, np.random.default_rng(1))
    assert len(small) == 30  # fewer negatives than asked: all of them, once


@pytest.mark.parametrize("forge", ["auc_interval", "brier", "baseline_auc", "threshold", "metric_removed"])
def test_a_stored_evaluation_that_is_not_its_tables_is_red(tmp_path, forge):
    """evaluation.json's numbers are recomputed from the stored scored rows: an interval, a
    Brier score, the shortcut baseline's AUC or an operating threshold written better than the
    tables give turns ``detector_evaluation_recomputed`` red, and the AUC gate decides on the
    recomputed interval, not the stored one."""
    from lensaudit.evaluation.run import evaluation_json_path

    _evaluated_home(tmp_path)
    res = _run(tmp_path, MODEL_GATES)
    assert all(r.passed for r in res.values()) or not res["detector_auc_better_than_chance"].passed
    honest_lo95 = res["detector_auc_better_than_chance"].metric
    p = evaluation_json_path(tmp_path, "resnet18")
    rep = json.loads(p.read_text())
    if forge == "auc_interval":
        rep["metrics"]["roc_auc"].update(lo95=0.999, hi95=1.0)
    elif forge == "brier":
        rep["metrics"]["brier"]["value"] = 0.0
    elif forge == "baseline_auc":
        rep["baseline_shortcut_lr"]["metrics"]["roc_auc"]["value"] = 0.5
    elif forge == "threshold":
        rep["thresholds"]["fpr0.01"]["logit"] = -10.0
    else:
        del rep["metrics"]["ece"]
    p.write_text(json.dumps(rep))
    res = _run(tmp_path, MODEL_GATES)
    assert not res["detector_evaluation_recomputed"].passed, res["detector_evaluation_recomputed"].details
    assert res["detector_evaluation_recomputed"].metric >= 1
    assert res["detector_auc_better_than_chance"].metric == honest_lo95  # never the forged 0.999


def test_cutout_gates_green_on_a_store_written_by_the_partition_job(tmp_path, lenscat_all):
    """The real writer (spark_jobs.cutouts on mock stamps, NaN patches and missing bands
    included): the integrity gates pass on what it stores, and catch a shifted offset."""
    from dataclasses import asdict

    from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
    from lensaudit.mock.writer import write_mock_sweep
    from lensaudit.spark_jobs.cutouts import cutouts_one_partition
    from lensaudit.survey.reader import read_catalog_fits

    cfg = MockSkyConfig(n_objects_per_sweep=2000, nan_patch_rate=0.3, missing_band_rate=0.1)
    name = MOCK_SWEEP_BOXES[1].name
    p = write_mock_sweep(cfg, name, tmp_path / "s", tmp_path / "t", lenscat_all)
    rows = read_catalog_fits(p).to_pandas()
    rows["galaxy_id"] = rows.brickname + "_" + rows.objid.astype(str)
    rows.to_parquet(tmp_path / "sweep.parquet")
    man = rows[np.isfinite(rows.ra)].head(40)[["galaxy_id", "ra", "dec", "brickname"]].copy()
    man["sweep"], man["label"], man["split"] = name, 0, "train"
    spec = {"kind": "mock", "mock_config": asdict(cfg), "sweep_parquet": {name: str(tmp_path / "sweep.parquet")},
            "truth_dir": str(tmp_path / "t")}
    home = tmp_path / "home"
    out = home / "assets" / "cutouts" / f"{name.replace('.fits', '')}.parquet"
    info = cutouts_one_partition(name, man, spec, str(home / "cutout_store"), str(out), shard_rows=16)
    assert info["ok"] >= 20 and len(info["shards"]) >= 2
    idx = pd.read_parquet(out)
    assert idx["nan_frac"][idx["cutout_ok"]].gt(0).any()  # some stamps take the one-by-one QC path
    res = _run(home, CUTOUT_GATES)
    assert all(r.passed for r in res.values()), {k: r.details for k, r in res.items() if not r.passed}
    first = idx.index[idx["cutout_ok"]][0]
    idx.loc[first, "cutout_offset"] += 1
    write_parquet_atomic(idx, out, schema=INDEX_SCHEMA)
    res = _run(home, CUTOUT_GATES)
    assert not res["cutout_qc_recomputed"].passed and not res["cutout_index_links_valid"].passed


# ---- shortcut features recomputed from the stamps ---------------------------------------


@pytest.mark.parametrize("plant", [None, "rows_permuted", "one_value", "row_dropped", "label_flipped", "foreign_row"])
def test_shortcut_features_are_recomputed_from_the_stamps(tmp_path, plant):
    """The stored features must be the index's good stamps' own: scrambled across rows (labels
    kept, which hides a real shortcut), one value edited, a row dropped or added, or a label
    flipped turns ``shortcut_features_recomputed`` red; the producer's table is green."""
    from lensaudit.cutouts.features import FEATURES, store_saturation_threshold
    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.gates.shortcut_gates import features_recomputed
    from lensaudit.spark_jobs.cutouts import features_one_partition

    index = _write_store(tmp_path, _stamps(n=20, seed=3))
    reader = CutoutReader(tmp_path / "cutout_store")
    feats = features_one_partition(str(tmp_path / "assets" / "cutouts" / "sweep-a.parquet"), str(tmp_path / "cutout_store"),
                                   store_saturation_threshold(index, reader))
    if plant == "rows_permuted":
        feats[list(FEATURES)] = feats[list(FEATURES)].to_numpy()[::-1]
    elif plant == "one_value":
        feats.loc[5, "core_mean_8"] *= 1.01
    elif plant == "row_dropped":
        feats = feats.drop(index=7)
    elif plant == "label_flipped":
        feats.loc[2, "label"] = 1 - feats.loc[2, "label"]
    elif plant == "foreign_row":
        feats = pd.concat([feats, feats.iloc[[0]].assign(galaxy_id="gfail")], ignore_index=True)
    res = features_recomputed(feats, index, reader, np.random.default_rng(0), n_rows=4)
    assert res.passed == (plant is None), res.details
    assert res.details["recomputed"] == 8
    full = features_recomputed(feats, index, reader, np.random.default_rng(0), n_rows=64)  # every row
    good = set(index.loc[index["cutout_ok"], "galaxy_id"])
    assert full.passed == (plant is None) and full.details["recomputed"] == len(good & set(feats["galaxy_id"]))


def test_qc_verification_counts_equal_numpy_comparisons():
    """The QC gate's counts (``_count_rows``: float32 rows against float32 bounds that select the same
    values as the float64 bounds) equal numpy's float64 comparisons: bounds on a value, one float32
    step or a hair either side, between values, NaN, beyond float32's range, infinite; and its
    order-statistic test (``_kth_within``) accepts exactly the intervals that hold the k-th value."""
    rng = np.random.default_rng(2)
    for trial in range(400):
        n = int(rng.integers(1, 60))
        x = (rng.standard_normal((4, n)) * 10 ** rng.uniform(-6, 6)).astype(np.float32)
        if trial % 3 == 0:
            x = np.round(x)  # ties
        v = x[:, rng.integers(0, n)].astype(np.float64)
        for b in (v, v + 1e-12 * np.abs(v), v - 1e-12 * np.abs(v), np.nextafter(v, np.inf), np.nextafter(v, -np.inf),
                  rng.standard_normal(4) * 1e3, np.full(4, np.nan), np.full(4, 1e300), np.full(4, -1e300),
                  np.full(4, np.inf), np.zeros(4)):
            with np.errstate(invalid="ignore"):
                assert np.array_equal(ig._count_rows(x, b, inclusive=False), np.count_nonzero(x < b[:, None], axis=1))
                assert np.array_equal(ig._count_rows(x, b, inclusive=True), np.count_nonzero(x <= b[:, None], axis=1))
        k = int(rng.integers(0, n))
        kth = np.partition(x, k, axis=1)[:, k].astype(np.float64)
        for lo, hi in ((kth, kth), (np.nextafter(kth, np.inf), kth + 1), (kth - 1, np.nextafter(kth, -np.inf)),
                       (kth - 1e-9, kth + 1e-9)):
            assert np.array_equal(ig._kth_within(x, k, lo, hi), (kth >= lo) & (kth <= hi))
        xd = x.astype(np.float64)  # float64 rows: compared as they are
        assert np.array_equal(ig._count_rows(xd, v, inclusive=False), np.count_nonzero(xd < v[:, None], axis=1))


@pytest.mark.parametrize("record", ["cuda", "missing"])
def test_a_device_field_that_would_loosen_the_rescore_tolerance_is_not_believed(tmp_path, record):
    """The planted fault: test logits shifted by 0.02 (beyond the CPU tolerance, inside the CUDA
    one) and evaluation.json saying it scored on CUDA, or saying nothing, while run_info's
    training device is the CPU: the gate keeps the CPU's tolerance and turns red."""
    from lensaudit.evaluation.run import evaluation_json_path
    from lensaudit.gates.integrity_gates import rescore_device

    d, table, report = _detector_home(tmp_path)
    info = json.loads((d / "run_info.json").read_text())
    info["device_name"] = "cpu (x86_64, 2 threads)"
    (d / "run_info.json").write_text(json.dumps(info))
    scored = pd.read_parquet(table)
    write_parquet_atomic(scored.assign(logit=scored["logit"] + 0.02), table)
    _rehash_report(tmp_path, table)
    p = evaluation_json_path(tmp_path, "resnet18")
    rep = json.loads(p.read_text())
    if record == "cuda":
        rep["scored_on_device"] = "cuda"
    else:
        del rep["scored_on_device"]
    p.write_text(json.dumps(rep))
    res = _run(tmp_path, ["detector_logits_rescored"])["detector_logits_rescored"]
    assert not res.passed and res.details["resnet18"]["atol"] == 1e-3
    # a GPU-trained, GPU-evaluated detector keeps the wider tolerance
    assert rescore_device({"scored_on_device": "cuda"}, {"device_name": "NVIDIA H100 80GB HBM3"}) == "cuda"
    assert rescore_device({"scored_on_device": "cuda"}, {}) == "cpu"
