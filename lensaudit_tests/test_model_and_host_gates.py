"""Planted faults for the detector-row and host-bin gates."""

import pandas as pd

from lensaudit.gates.model_gates import auc_better_than_chance, evaluation_rows_disjoint
from lensaudit.gates.selection_gates import host_bins_populated


def _rows():
    used = pd.DataFrame({"galaxy_id": ["a", "b", "c"], "split": ["train", "train", "val"], "healpix_128": [1, 1, 2]})
    test = pd.DataFrame({"galaxy_id": ["d", "e"], "split": ["test", "test"], "healpix_128": [3, 4]})
    return used, test


def test_rows_disjoint_red_for_a_trained_row_scored_as_test():
    used, test = _rows()
    assert evaluation_rows_disjoint({"resnet18": used}, {"resnet18": test}).passed
    leak = pd.concat([test, used.iloc[[0]].assign(split="test")], ignore_index=True)
    assert not evaluation_rows_disjoint({"resnet18": used}, {"resnet18": leak}).passed
    pixel = test.assign(healpix_128=[1, 4])  # a test row in a training pixel
    assert not evaluation_rows_disjoint({"resnet18": used}, {"resnet18": pixel}).passed
    assert not evaluation_rows_disjoint({}, {"resnet18": test}).passed  # rows.parquet missing: cannot be computed


def test_auc_gate_red_at_chance():
    good = {"resnet18": {"metrics": {"roc_auc": {"value": 0.9, "lo95": 0.8}}}}
    chance = {"resnet18": {"metrics": {"roc_auc": {"value": 0.55, "lo95": 0.45}}}}
    assert auc_better_than_chance(good).passed and not auc_better_than_chance(chance).passed
    assert not auc_better_than_chance({}).passed


def test_host_bins_gate_flags_thin_bins():
    bins = pd.DataFrame({"psf_lo": [0.825, 0.975], "psf_hi": [0.975, 1.125], "depth_lo": [22.25, 22.25],
                         "depth_hi": [22.75, 22.75], "n_hosts": [10, 2], "too_few": [False, True]})
    res = host_bins_populated(bins)
    assert not res.passed and res.metric == 1
    assert host_bins_populated(bins.iloc[:1]).passed
