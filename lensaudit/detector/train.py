"""Training loop (DESIGN s3 "Detector"): AdamW (lr 3e-4, wd 1e-4), cosine schedule, loss
= per-sample-weighted BCE with ``sample_weight`` (tier B counts half), flips and rot90
augmentation (no brightness jitter), bf16 autocast and channels_last on CUDA, early
stopping on validation AUC (patience 10), model selection on validation only, fixed
and logged seeds.  The same code runs on CPU and GPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lensaudit.evaluation.auc import roc_auc


@dataclass
class TrainConfig:
    arch: str = "resnet18"
    epochs: int = 50
    batch_size: int = 256
    lr: float = 3e-4
    weight_decay: float = 1e-4
    patience: int = 10
    seed: int = 1234
    max_steps_per_epoch: int | None = None
    crop: int = 64
    extra: dict = field(default_factory=dict)


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_i BCE(logit_i, y_i) / sum_i w_i."""
    per = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    return (per * weights).sum() / weights.sum()


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips and rot90 per batch (dihedral group), no brightness change."""
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x = torch.rot90(x, k, dims=(2, 3))
    if int(torch.randint(0, 2, (1,), generator=gen)):
        x = torch.flip(x, dims=(3,))
    return x


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def predict(model: nn.Module, x: np.ndarray, device: str, batch: int = 1024) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            xb = torch.from_numpy(x[s:s + batch]).to(device)
            if device.startswith("cuda"):
                xb = xb.to(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    out.append(model(xb).float().squeeze(1).cpu().numpy())
            else:
                out.append(model(xb).squeeze(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def train(cfg: TrainConfig, x_train, y_train, w_train, x_val, y_val, device: str = "cpu", log=print):
    """Returns (best model state dict, history list, info dict)."""
    from lensaudit.detector.models import build_model

    seed_everything(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_model(cfg.arch).to(device)
    if device.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(x_train)
    steps = math.ceil(n / cfg.batch_size)
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs * steps))
    best, best_auc, best_epoch, bad, history = None, -1.0, -1, 0, []
    stop = "max_epochs"
    t_start, seen = time.perf_counter(), 0
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).numpy()
        losses = []
        for s in range(steps):
            idx = np.sort(perm[s * cfg.batch_size:(s + 1) * cfg.batch_size])
            xb = augment(torch.from_numpy(x_train[idx]), gen).to(device)
            yb = torch.from_numpy(y_train[idx].astype(np.float32)).to(device)
            wb = torch.from_numpy(w_train[idx].astype(np.float32)).to(device)
            if device.startswith("cuda"):
                xb = xb.to(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = weighted_bce(model(xb).squeeze(1), yb, wb)
            else:
                loss = weighted_bce(model(xb).squeeze(1), yb, wb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            seen += len(idx)
        scores = predict(model, x_val, device)
        auc = roc_auc(scores[y_val == 1], scores[y_val == 0]) if (y_val == 1).any() and (y_val == 0).any() else float("nan")
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_auc": auc})
        log(f"epoch {epoch}: loss {np.mean(losses):.4f} val AUC {auc:.4f}")
        if auc > best_auc:
            best_auc, best_epoch, bad = auc, epoch, 0
            best = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                stop = "early_stopping"
                break
    elapsed = time.perf_counter() - t_start
    info = {"epochs_run": len(history), "best_epoch": best_epoch, "best_val_auc": best_auc, "stop_reason": stop,
            "train_images_per_s": seen / elapsed if elapsed > 0 else float("nan"), "device": device}
    return best, history, info
