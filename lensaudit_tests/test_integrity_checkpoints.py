"""Checkpoints: byte-reproducible writes, NaN/inf weights refused, hash checked at load."""

import json

import pytest
import torch

from lensaudit.detector.models import CheckpointError, build_model, checkpoint_bytes, load_checkpoint, save_checkpoint
from lensaudit.store import file_sha256


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model("resnet18")


def test_same_state_dict_gives_identical_bytes_under_any_file_name(tmp_path):
    m = _model()
    h1 = save_checkpoint(m, tmp_path / "a" / "best.pt")
    h2 = save_checkpoint(m, tmp_path / "b" / "other_name.pt")
    b1, b2 = (tmp_path / "a" / "best.pt").read_bytes(), (tmp_path / "b" / "other_name.pt").read_bytes()
    assert b1 == b2 and h1 == h2 == file_sha256(tmp_path / "a" / "best.pt")
    assert checkpoint_bytes({k: v.detach().cpu() for k, v in m.state_dict().items()}) == b1
    # plain torch.load(weights_only=True) reads it
    state = torch.load(tmp_path / "a" / "best.pt", weights_only=True)
    assert set(state) == set(m.state_dict())
    assert save_checkpoint(_model(1), tmp_path / "c.pt") != h1  # different weights, different bytes


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load_and_at_save(tmp_path, bad):
    m = _model()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    state["fc.weight"][0, 3] = bad
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="fc.weight.*NaN/inf"):
        load_checkpoint(tmp_path / "bad.pt", "resnet18")
    with pytest.raises(CheckpointError, match="NaN/inf"):
        checkpoint_bytes(state)


def test_frozen_detector_refuses_a_checkpoint_changed_since_training(tmp_path):
    from lensaudit.detector.run import detector_dir
    from lensaudit.evaluation.run import load_frozen_detector

    d = detector_dir(tmp_path, "resnet18")
    d.mkdir(parents=True)
    digest = save_checkpoint(_model(), d / "best.pt")
    (d / "run_info.json").write_text(json.dumps({"checkpoint_sha256": digest, "config_sha256": "x"}))
    _, info = load_frozen_detector(tmp_path, "resnet18", "cpu")
    assert info["checkpoint_sha256_loaded"] == digest
    save_checkpoint(_model(1), d / "best.pt")  # swapped after training
    with pytest.raises(CheckpointError, match="differs"):
        load_frozen_detector(tmp_path, "resnet18", "cpu")
    (d / "run_info.json").write_text("{truncated")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_frozen_detector(tmp_path, "resnet18", "cpu")


def test_same_seed_training_gives_a_byte_identical_best_pt(tmp_path):
    import numpy as np

    from lensaudit.detector.config import TrainConfig
    from lensaudit.detector.train import train

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (24, 3, 32, 32)).astype(np.float32)
    y = np.arange(24) % 2
    x[y == 1, :, 12:20, 12:20] += 2.0
    cfg = TrainConfig(arch="resnet18", epochs=1, batch_size=8, max_steps_per_epoch=2, seed=3)
    digests = []
    for k in range(2):
        best, _, _ = train(cfg, x, y, np.ones(24), x[:8], y[:8], log=lambda *_: None)
        m = build_model("resnet18")
        m.load_state_dict(best)
        digests.append(save_checkpoint(m, tmp_path / f"run{k}" / "best.pt"))
    assert digests[0] == digests[1]
    assert (tmp_path / "run0" / "best.pt").read_bytes() == (tmp_path / "run1" / "best.pt").read_bytes()
