"""The scripts that take the ``full`` profile's detector to a GPU box and back run end to end on a
small home (CPU, one epoch): the subset export, training with the full settings and its evaluation
(validation thresholds), the TorchScript + spec it sends back, and that model's audit on the home at a
given number of injections per cell (bench/RESULTS.md "The `full` profile on a GPU")."""

import json
import os
import subprocess
import sys
from pathlib import Path

from lensaudit.detector.external import load_external
from lensaudit.store import read_asset
from lensaudit_tests.test_external_detector import _home

ROOT = Path(__file__).resolve().parents[1]


def _run(args, **env):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_export_train_save_and_audit_round_trip(tmp_path):
    home = _home(tmp_path / "home", train=(40, 6))
    npz = tmp_path / "subset.npz"
    r = _run(["bench/export_mock_subset.py", "--home", str(home), "--out", str(npz),
              "--negatives", "train=40,val=100,test=24"])
    assert r.returncode == 0, r.stderr
    r = _run(["bench/train_mock_subset.py", str(npz), "1"], SAVE_DIR=str(tmp_path / "back"))
    assert r.returncode == 0, r.stderr
    assert "test AUC" in r.stdout and "fpr0.01 (threshold on the subset's val split)" in r.stdout
    spec = tmp_path / "back" / "resnet18_full.json"
    assert json.loads(spec.read_text())["input_size"] == 64
    assert load_external(spec, "cpu").name == "resnet18-full-gpu"  # the spec and TorchScript load as a finder
    r = _run(["bench/audit_subset_model.py", "--home", str(home), "--spec", str(spec), "--n-per-cell", "2",
              "--bracket-per-cell", "1", "--out", str(tmp_path / "audit")])
    assert r.returncode == 0, r.stderr
    assert "2 injections per cell" in r.stdout and "stage seconds" in r.stdout
    table = read_asset(tmp_path / "audit", "completeness_table")
    # the home's hosts sit in one PSF x depth bin: its 11 theta_E cells, 2 injections each
    assert len(table) == 385 and int((table["n"] + table["n_host_fp"]).sum()) == 11 * 2
