"""Training loop (DESIGN s3 "Detector"): AdamW (lr 3e-4, wd 1e-4), cosine schedule, loss
= per-sample-weighted BCE with ``sample_weight`` (tier B counts half), flips and rot90
augmentation per sample (the dihedral group; no brightness jitter), bf16 autocast and
channels_last on CUDA, early stopping on validation AUC (patience 10), model selection
on validation only, fixed and logged seeds.  The same code runs on CPU and GPU.

Data path: the normalised split is one tensor on the compute device (``SplitData.x``);
each step gathers its batch there by index and augments it there, so on a GPU no batch
crosses the host bus (the "DataLoader that keeps the GPU busy" is this resident tensor:
the whole demo/full training set is < 2 GB at 64^2).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from lensaudit.detector.config import TrainConfig
from lensaudit.auc import roc_auc

__all__ = ["TrainConfig", "augment", "predict", "seed_everything", "train", "weighted_bce"]


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_i BCE(logit_i, y_i) / sum_i w_i."""
    per = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    return (per * weights).sum() / weights.sum()


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """An independent element of the dihedral group D4 (rot90 k in 0..3, optional
    horizontal flip) for every sample; brightness untouched.  ``gen`` is a CPU generator
    (the draw is reproducible on any device); the transforms run where ``x`` lives."""
    n = x.shape[0]
    code = torch.randint(0, 8, (n,), generator=gen).to(x.device)
    out = torch.empty_like(x)
    for c in range(8):
        sel = (code == c).nonzero(as_tuple=True)[0]
        if sel.numel() == 0:
            continue
        xs = torch.rot90(x.index_select(0, sel), c % 4, dims=(2, 3))
        out[sel] = torch.flip(xs, dims=(3,)) if c >= 4 else xs
    return out


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _as_device_tensor(x, device: str) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float32)
    return t.to(device)


def predict(model: nn.Module, x, device: str, batch: int = 1024, bf16: bool = True) -> np.ndarray:
    """Logits of preprocessed stamps ``x`` (numpy or tensor, any device), in order.
    ``bf16`` autocasts on CUDA (validation during training); False scores in float32."""
    model.eval()
    out = []
    cuda = device.startswith("cuda")
    with torch.no_grad():
        for s in range(0, len(x), batch):
            xb = _as_device_tensor(x[s:s + batch], device)
            if cuda:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and bf16):
                out.append(model(xb).float().squeeze(1).cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0, np.float64)


def train(cfg: TrainConfig, x_train, y_train, w_train, x_val, y_val, device: str = "cpu", log=print):
    """Returns (best model state dict on the CPU, history list, info dict).

    ``x_*`` are preprocessed stamps (numpy or torch; moved to ``device`` once)."""
    from lensaudit.detector.models import build_model

    if not (np.asarray(y_val) == 1).any() or not (np.asarray(y_val) == 0).any():
        raise ValueError("the validation split needs both classes: early stopping on val AUC is undefined otherwise")
    seed_everything(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    cuda = device.startswith("cuda")
    model = build_model(cfg.arch).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            **({"fused": True} if cuda else {}))
    xt = _as_device_tensor(x_train, device)
    yt = torch.as_tensor(np.asarray(y_train, np.float32)).to(device)
    wt = torch.as_tensor(np.asarray(w_train, np.float32)).to(device)
    yv = np.asarray(y_val)
    if not 0 < cfg.neg_fraction_per_epoch <= 1:
        raise ValueError(f"neg_fraction_per_epoch must be in (0, 1], got {cfg.neg_fraction_per_epoch}")
    pos_idx = torch.as_tensor(np.flatnonzero(np.asarray(y_train) == 1))
    neg_idx = torch.as_tensor(np.flatnonzero(np.asarray(y_train) != 1))
    if cfg.neg_subsample_correction not in ("weights", "prior_shift"):
        raise ValueError(f"neg_subsample_correction must be 'weights' or 'prior_shift', got {cfg.neg_subsample_correction!r}")
    n_neg_epoch = max(1, round(cfg.neg_fraction_per_epoch * len(neg_idx))) if len(neg_idx) else 0
    if cfg.neg_fraction_per_epoch < 1 and cfg.neg_subsample_correction == "weights":
        wt = torch.where(yt == 1, wt, wt / cfg.neg_fraction_per_epoch)
    n = len(pos_idx) + n_neg_epoch
    steps = math.ceil(n / cfg.batch_size)
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs * steps))
    best, best_auc, best_epoch, bad, history = None, -1.0, -1, 0, []
    stop = "max_epochs"
    train_time, seen = 0.0, 0
    for epoch in range(cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        if n_neg_epoch < len(neg_idx):
            pool = torch.cat([pos_idx, neg_idx[torch.randperm(len(neg_idx), generator=gen)[:n_neg_epoch]]])
            perm = pool[torch.randperm(len(pool), generator=gen)]
        else:
            perm = torch.randperm(n, generator=gen)
        loss_sum = torch.zeros((), device=device)
        for s in range(steps):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size].sort().values.to(device)
            xb = augment(xt.index_select(0, idx), gen)
            if cuda:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = weighted_bce(model(xb).squeeze(1), yt[idx], wt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach()
            seen += len(idx)
        mean_loss = float(loss_sum) / steps  # one device sync per epoch
        train_time += time.perf_counter() - t0
        scores = predict(model, x_val, device)
        auc = roc_auc(scores[yv == 1], scores[yv == 0])
        history.append({"epoch": epoch, "train_loss": mean_loss, "val_auc": auc,
                        "epoch_train_s": time.perf_counter() - t0})
        log(f"epoch {epoch}: loss {mean_loss:.4f} val AUC {auc:.4f}")
        if auc > best_auc:
            best_auc, best_epoch, bad = auc, epoch, 0
            best = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                stop = "early_stopping"
                break
    prior_shift = 0.0
    if cfg.neg_fraction_per_epoch < 1 and cfg.neg_subsample_correction == "prior_shift" and best is not None:
        from lensaudit.detector.models import OUTPUT_BIAS_KEY

        prior_shift = math.log(cfg.neg_fraction_per_epoch)
        key = OUTPUT_BIAS_KEY[cfg.arch]
        best[key] = best[key] + torch.tensor(prior_shift, dtype=best[key].dtype)
    info = {"epochs_run": len(history), "best_epoch": best_epoch, "best_val_auc": best_auc, "stop_reason": stop,
            "output_bias_prior_shift": prior_shift,
            "train_images_per_s": seen / train_time if train_time > 0 else float("nan"),
            "mean_epoch_train_s": train_time / max(1, len(history)), "device": device}
    return best, history, info
