"""Audit your own finder: a TorchScript model through the input spec, and the offline mode
(export the stamps, score them outside, import the scores) giving the same tables.

The home is the smallest one the selection function runs on: a manifest and cutout store
of 140 synthetic stamps (110 validation rows: 100 negatives resolve the FPR-1e-2 threshold;
24 test negatives as hosts in one PSF x depth bin; 3 test lenses; 3 train rows), the
``tiny`` profile (2 injections per cell), and a scripted tiny CNN.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lensaudit.config import get_profile
from lensaudit.cutouts.store import write_shard
from lensaudit.selection.run import build_hosts
from lensaudit.stamps import radius_map
from lensaudit.store import read_asset, write_parquet_atomic
from lensaudit_cli.main import main

PROFILE = get_profile("tiny")


@pytest.fixture(autouse=True)
def _cli_env(monkeypatch):
    """The CLI sets LENSAUDIT_HOME / _PROFILE / DAGSTER_HOME: restored after each test."""
    import os

    for k in ("LENSAUDIT_HOME", "LENSAUDIT_PROFILE", "DAGSTER_HOME"):
        monkeypatch.setenv(k, os.environ.get(k, ""))


class TinyCNN(torch.nn.Module):
    """conv 5x5 (3 -> 4) -> relu -> spatial mean -> linear: one output per stamp."""

    def __init__(self, n_in: int = 3, probability: bool = False, nhwc: bool = False, n_out: int = 1):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(n_in, 4, 5)
        self.fc = torch.nn.Linear(4, n_out)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.probability, self.nhwc = probability, nhwc

    def forward(self, x):
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        y = self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))
        return torch.sigmoid(y) if self.probability else y


def _save_model(tmp_path, name="tiny", **kw):
    path = tmp_path / f"{name}.pt"
    torch.jit.script(TinyCNN(**{k: v for k, v in kw.items() if k in ("n_in", "probability", "nhwc", "n_out")}).eval()).save(str(path))
    spec = {"name": name, "model": path.name, "format": "torchscript", "bands": "grz", "input_size": 48,
            "preprocessing": "raw_robust", "output": "logit"}
    spec.update({k: v for k, v in kw.items() if k not in ("n_in", "probability", "nhwc", "n_out")})
    sp = tmp_path / f"{name}.json"
    sp.write_text(json.dumps(spec))
    return sp


def _home(root, train: tuple[int, int] = (3, 0)):
    """A home with manifest, cutouts, store, run_profile and injection hosts (``train``: the
    train split's negatives and lenses)."""
    rng = np.random.default_rng(5)
    r = radius_map(101)
    galaxy = np.exp(-0.5 * (r / 3.0) ** 2)[None] * np.array([0.02, 0.04, 0.06])[:, None, None]
    ring = np.where(np.abs(r - 9) < 1.5, 0.01, 0.0)[None]
    rows, stamps = [], []
    layout = [("val", 0)] * 100 + [("val", 1)] * 10 + [("test", 0)] * 24 + [("test", 1)] * 3 + [("train", 0)] * train[0] + [("train", 1)] * train[1]
    for i, (split, label) in enumerate(layout):
        stamps.append(rng.normal(0, 0.003, (3, 101, 101)) + galaxy * rng.uniform(0.5, 2) + label * ring)
        rows.append({"galaxy_id": f"g{i:04d}", "split": split, "label": label, "tier": "A" if label else None,
                     "pool": "lens" if label else "N1", "confuser_category": None if i % 3 else "ring",
                     "healpix_128": {"val": 1, "test": 2, "train": 3}[split], "sample_weight": 1.0,
                     "psfsize_g": 1.3, "psfsize_r": 1.2, "psfsize_z": 1.1, "psfdepth_g": 800.0, "psfdepth_r": 600.0,
                     "psfdepth_z": 100.0, "ebv": 0.03, "nobs_z": 4, "nobs_z_bin": "3-4"})
    man = pd.DataFrame(rows)
    write_shard(root / "cutout_store" / "shards" / "s-0.npy", np.stack(stamps).astype(np.float32))
    idx = man[["galaxy_id", "split", "label"]].assign(cutout_path="shards/s-0.npy", cutout_offset=np.arange(len(man)),
                                                      cutout_ok=True, fail_reason="")
    write_parquet_atomic(man, root / "assets" / "training_manifest" / "data.parquet")
    write_parquet_atomic(idx, root / "assets" / "cutouts" / "data.parquet")
    (root / "run_profile.json").write_text(json.dumps({"profile": "tiny"}))
    build_hosts(root, PROFILE)
    return root


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return _home(tmp_path_factory.mktemp("exthome"))


def _table(folder, asset="completeness_table"):
    return read_asset(folder, asset)


def _score_npz(npz, spec_path):
    """The 'group' side: load the export, score it with the same model, return the scores table."""
    from lensaudit.detector.external import load_external

    det = load_external(spec_path, "cpu")
    with np.load(npz) as z:
        assert z["cutout"].ndim == 4 and z["cutout"].shape[1:] == (101, 101, 3) and z["cutout"].dtype == np.float32
        assert str(z["meta_bands_requested"]) == "grz" and len(z["id"]) == len(z["cutout"])
        stamps = torch.from_numpy(np.ascontiguousarray(np.transpose(z["cutout"], (0, 3, 1, 2))))
        ids = z["id"].astype(str)
    logits = torch.cat([det.score_raw(stamps[s:s + 64]) for s in range(0, len(stamps), 64)]).float().double().numpy()
    return pd.DataFrame({"id": ids, "logit": logits})


def test_audit_model_export_import_give_the_same_tables(home, tmp_path, capsys):
    spec = _save_model(tmp_path)
    assert main(["audit-model", "--home", str(home), "--spec", str(spec)]) == 0
    out = home / "external" / "tiny"
    inproc = _table(out)
    assert len(inproc) == 385 and inproc["n"].sum() + inproc["n_host_fp"].sum() == 11 * PROFILE.selection.n_per_cell
    assert (out / "assets" / "detector_evaluation" / "tiny" / "val_scores.parquet").is_file()
    assert not (home / "assets" / "completeness_table").exists()  # the home's own results are not touched
    text = capsys.readouterr().out
    assert "completeness_table_valid" in text and "injection_hosts_held_out" in text
    page = (out / "audit_report.html").read_text()
    assert "completeness_table_valid" in page and "data:image/png;base64" in page and "model_sha256" in page
    from lensaudit.audit_report import build_report

    assert "External finders audited on this home" in build_report(home, PROFILE)  # the home's report lists it
    # the gate table of the audit folder, through `lensaudit gates`
    main(["gates", "--home", str(out)])
    assert "completeness_table_valid" in capsys.readouterr().out

    npz = tmp_path / "inj.npz"
    assert main(["export-injections", "--home", str(home), "--out", str(npz)]) == 0
    scores = _score_npz(npz, spec)
    kinds = scores["id"].str.split(":").str[0].value_counts()
    assert kinds["val"] == 110 and kinds["test"] == 27 and kinds["host"] == 24 and kinds["null"] == 24
    assert kinds["injection"] == 22 and kinds["lens"] == kinds["suppressed"] == 3
    scores.to_parquet(tmp_path / "scores.parquet")
    assert main(["import-scores", "--home", str(home), "--scores", str(tmp_path / "scores.parquet")]) == 0
    imp = home / "external" / "imported"
    for asset in ("completeness_table", "completeness_brackets", "failure_modes", "adversarial_scores"):
        pd.testing.assert_frame_equal(_table(imp, asset), _table(out, asset))
    pd.testing.assert_frame_equal(_table(imp, "completeness_injections"), _table(out, "completeness_injections"))
    # the same from a CSV of probabilities
    p = scores.assign(probability=1 / (1 + np.exp(-scores["logit"]))).drop(columns="logit")
    p.to_csv(tmp_path / "scores.csv", index=False, float_format="%.17g")
    assert main(["import-scores", "--home", str(home), "--scores", str(tmp_path / "scores.csv"), "--name", "p"]) == 0
    a, b = _table(home / "external" / "p"), _table(out)
    assert (a["k"] == b["k"]).all() and (a["n"] == b["n"]).all()
    assert json.loads((imp / "external_audit.json").read_text())["scores_column"] == "logit"
    assert 0 < b["k"].sum() < b["n"].sum()  # the comparison is not trivial: some detected, some missed


def test_probability_model_nhwc_and_band_subset(home, tmp_path):
    from lensaudit.detector.external import load_external
    from lensaudit.detector.scorer import probability_to_logit

    sp = _save_model(tmp_path, "pr", n_in=2, probability=True, nhwc=True, bands="zr", preprocessing="crop_nmgy",
                     output="probability", layout="NHWC")
    det = load_external(sp, "cpu")
    x = torch.from_numpy(np.random.default_rng(1).normal(0, 0.01, (3, 3, 101, 101)).astype(np.float32))
    raw = TinyCNN(n_in=2, probability=True).eval()(x[:, [2, 1], 26:74, 26:74]).detach().double().numpy().ravel()
    assert np.allclose(det.score_raw(x).numpy(), probability_to_logit(raw), atol=1e-5)
    # the same preprocessing given as a callable path
    sp2 = _save_model(tmp_path, "pr2", n_in=2, probability=True, nhwc=True, bands="zr", output="probability",
                      preprocessing="lensaudit.detector.preprocess:crop_nmgy", layout="NHWC")
    assert np.array_equal(load_external(sp2, "cpu").score_raw(x).numpy(), det.score_raw(x).numpy())


def test_onnx_model_scores_like_the_torch_model(tmp_path):
    import onnx  # noqa: F401 - the test extra; missing means a broken install, an error, not a skip
    import onnxruntime  # noqa: F401 - a dependency
    from lensaudit.detector.external import load_external

    net = TinyCNN().eval()
    torch.onnx.export(net, (torch.zeros(1, 3, 48, 48),), str(tmp_path / "m.onnx"), dynamo=False, input_names=["x"],
                      output_names=["logit"], dynamic_axes={"x": {0: "n"}, "logit": {0: "n"}})
    (tmp_path / "m.json").write_text(json.dumps({"name": "onnx-tiny", "model": "m.onnx", "format": "onnx",
                                                 "input_size": 48}))
    det = load_external(tmp_path / "m.json", "cpu")
    x = torch.from_numpy(np.random.default_rng(2).normal(0, 0.01, (5, 3, 101, 101)).astype(np.float32))
    from lensaudit.detector.preprocess import raw_robust

    want = net(raw_robust(x, crop=48)[0]).detach().double().numpy().ravel()
    assert np.allclose(det.score_raw(x).numpy(), want, atol=1e-5)
    (tmp_path / "w.json").write_text(json.dumps({"name": "w", "model": "m.onnx", "format": "onnx", "input_size": 40}))
    with pytest.raises(ValueError, match="rejected an input of shape"):
        load_external(tmp_path / "w.json", "cpu")


def _fails(capsys, argv, *words):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(w in err for w in words), err


def test_bad_specs_and_scores_are_clear_errors(home, tmp_path, capsys):
    h = str(home)
    _fails(capsys, ["audit-model", "--home", h, "--spec", str(_save_model(tmp_path, "a", preprocessing="zscore"))],
           "unknown preprocessing 'zscore'")
    _fails(capsys, ["audit-model", "--home", h, "--spec", str(_save_model(tmp_path, "b", n_in=2))],
           "rejected an input of shape")  # 3 bands declared, the model takes 2
    _fails(capsys, ["audit-model", "--home", h, "--spec", str(_save_model(tmp_path, "c", bands="gq"))], "bands 'gq'")
    _fails(capsys, ["audit-model", "--home", h, "--spec", str(_save_model(tmp_path, "c2", n_out=2))],
           "returned shape (2, 2) for 2 stamps")
    _fails(capsys, ["audit-model", "--home", h, "--spec", str(_save_model(tmp_path, "c3", preprocessing="no.such:f"))],
           "cannot be imported")
    _fails(capsys, ["audit-model", "--home", h, "--spec", str(_save_model(tmp_path, "c4", output="score"))],
           "output 'score' unknown")
    _fails(capsys, ["audit-model", "--home", h, "--spec", str(_save_model(tmp_path, "d", input_size=200))], "input_size")
    _fails(capsys, ["audit-model", "--home", h, "--spec", str(tmp_path / "none.json")], "cannot read the input spec")
    _fails(capsys, ["audit-model", "--home", h, "--spec", str(_save_model(tmp_path, "f")), "--device", "tpu"],
           "device 'tpu'")
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    (tmp_path / "e.json").write_text(json.dumps({"name": "e", "model": "bad.pt"}))
    _fails(capsys, ["audit-model", "--home", h, "--spec", str(tmp_path / "e.json")], "not a loadable TorchScript")

    npz = tmp_path / "x.npz"
    assert main(["export-injections", "--home", h, "--out", str(npz)]) == 0
    with np.load(npz) as z:
        ids = z["id"].astype(str)
    good = pd.DataFrame({"id": ids, "logit": np.linspace(-3, 3, len(ids))})
    cases = [(good.iloc[5:], "have no score", "val:"), (good.assign(logit=np.where(np.arange(len(ids)) == 3, np.nan, 0.0)),
              "NaN or infinite"), (pd.concat([good, good.iloc[:2]]), "more than once"),
             (pd.concat([good, pd.DataFrame({"id": ["injection:zz"], "logit": [0.0]})]), "were not exported"),
             (good.rename(columns={"logit": "probability"}), "outside [0, 1]"),
             (good.rename(columns={"logit": "score"}), "exactly one score column"),
             (good.assign(probability=0.5), "exactly one score column")]
    for i, (df, *words) in enumerate(cases):
        f = tmp_path / f"s{i}.csv"
        df.to_csv(f, index=False)
        _fails(capsys, ["import-scores", "--home", h, "--scores", str(f)], *words)
    _fails(capsys, ["import-scores", "--home", h, "--scores", str(tmp_path / "missing.parquet")], "unreadable")
    # a stamp regenerated at import that is not the exported one (the home changed): refused
    good.to_csv(tmp_path / "good.csv", index=False)
    side = home / "external" / "export" / "ids.parquet"
    t = pd.read_parquet(side)
    first = t.loc[t["kind"] == "injection", "id"].iloc[0]
    t.loc[t["id"] == first, "sha256"] = "0" * 64
    write_parquet_atomic(t, side)
    _fails(capsys, ["import-scores", "--home", h, "--scores", str(tmp_path / "good.csv")],
           "differ from the exported ones", first)
    _fails(capsys, ["import-scores", "--home", h, "--scores", str(tmp_path / "s0.txt")], ".parquet or .csv")
    _fails(capsys, ["export-injections", "--home", h, "--out", str(tmp_path / "x.zip")], "one .npz file")
    _fails(capsys, ["export-injections", "--home", str(tmp_path / "nohome"), "--out", str(npz)], "nothing stored")


def test_the_dagster_job_audits_a_spec_on_the_device_resource(home, tmp_path):
    import dagster as dg

    from definitions import defs

    job = defs.resolve_job_def("lensaudit_external_detector")
    spec = _save_model(tmp_path, "dg-tiny")
    res = {"settings": {"config": {"home": str(home), "profile": "tiny"}}}
    r = job.execute_in_process(run_config={"ops": {"audit_external_detector": {"config": {"spec": str(spec)}}},
                                           "resources": res}, instance=dg.DagsterInstance.ephemeral())
    assert r.success
    out = r.output_for_node("audit_external_detector")
    assert out["gates"]["completeness_table_valid"]["passed"]
    assert len(read_asset(home / "external" / "dg-tiny", "completeness_table")) == 385
    npz = tmp_path / "inj.npz"
    assert main(["export-injections", "--home", str(home), "--out", str(npz)]) == 0
    _score_npz(npz, spec).to_parquet(tmp_path / "s.parquet")
    cfg = {"scores": str(tmp_path / "s.parquet"), "name": "dg-imported"}
    r = job.execute_in_process(run_config={"ops": {"audit_external_detector": {"config": cfg}}, "resources": res},
                               instance=dg.DagsterInstance.ephemeral())
    assert r.success
    pd.testing.assert_frame_equal(read_asset(home / "external" / "dg-imported", "completeness_table"),
                                  read_asset(home / "external" / "dg-tiny", "completeness_table"))
    bad = job.execute_in_process(run_config={"ops": {"audit_external_detector": {"config": {}}}, "resources": res},
                                 instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not bad.success
