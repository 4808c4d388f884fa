"""Detector: loss weighting, a tiny reproducible CPU training run, checkpoint safety."""

import numpy as np
import pytest
import torch

from lensaudit.detector.models import CheckpointError, build_model, load_checkpoint, save_checkpoint
from lensaudit.detector.train import TrainConfig, train, weighted_bce


def test_tier_b_positive_contributes_half_the_gradient():
    logits = torch.zeros(2, requires_grad=True)
    labels = torch.tensor([1.0, 1.0])
    loss = weighted_bce(logits, labels, torch.tensor([1.0, 0.5])) * 1.5  # undo the normalisation
    loss.backward()
    g = logits.grad
    assert float(g[1] / g[0]) == pytest.approx(0.5)


def _toy(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 3, 32, 32)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.int64)
    x[y == 1, :, 12:20, 12:20] += 2.0  # a learnable signal in the centre
    w = np.where(y == 1, 1.0, 1.0)
    return x, y, w


def test_tiny_cpu_training_lowers_the_loss_and_is_reproducible():
    torch.set_num_threads(1)
    x, y, w = _toy()
    xv, yv, _ = _toy(64, seed=1)
    cfg = TrainConfig(arch="resnet18", epochs=4, batch_size=32, lr=1e-3, patience=10, seed=7)
    best1, hist1, info1 = train(cfg, x, y, w, xv, yv, log=lambda *_: None)
    best2, hist2, _ = train(cfg, x, y, w, xv, yv, log=lambda *_: None)
    assert hist1[-1]["train_loss"] < hist1[0]["train_loss"]
    assert [h["train_loss"] for h in hist1] == [h["train_loss"] for h in hist2]
    assert all(torch.equal(best1[k], best2[k]) for k in best1)
    assert info1["best_epoch"] >= 0 and info1["stop_reason"] in ("max_epochs", "early_stopping")


def test_checkpoints_load_weights_only_and_refuse_the_wrong_thing(tmp_path):
    m = build_model("resnet18")
    save_checkpoint(m, tmp_path / "best.pt")
    m2 = load_checkpoint(tmp_path / "best.pt", "resnet18")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    # plain torch.load(weights_only=True) works on it, as the independent check does
    blob = torch.load(tmp_path / "best.pt", weights_only=True)
    import torchvision

    tv = torchvision.models.resnet18(weights=None, num_classes=1)
    tv.load_state_dict(blob)
    with pytest.raises(CheckpointError, match="not a efficientnet_b0 checkpoint"):
        load_checkpoint(tmp_path / "best.pt", "efficientnet_b0")
    data = (tmp_path / "best.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a loadable"):
        load_checkpoint(tmp_path / "cut.pt", "resnet18")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"conv1.weight": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt", "resnet18")
    with pytest.raises(ValueError):
        build_model("vgg")


def test_efficientnet_trains_and_round_trips(tmp_path):
    """The second architecture partition: one short CPU epoch, then a weights-only round trip."""
    x, y, w = _toy(32)
    cfg = TrainConfig(arch="efficientnet_b0", epochs=1, batch_size=16, seed=3)
    best, hist, info = train(cfg, x, y, w, x, y, log=lambda *_: None)
    assert info["epochs_run"] == 1 and np.isfinite(hist[0]["train_loss"])
    m = build_model("efficientnet_b0")
    m.load_state_dict(best)
    save_checkpoint(m, tmp_path / "best.pt")
    assert isinstance(load_checkpoint(tmp_path / "best.pt", "efficientnet_b0"), torch.nn.Module)
    with pytest.raises(CheckpointError, match="not a resnet18 checkpoint"):
        load_checkpoint(tmp_path / "best.pt", "resnet18")
