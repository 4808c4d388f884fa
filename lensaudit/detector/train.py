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
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from lensaudit.detector.config import TrainConfig
from lensaudit.auc import roc_auc

__all__ = ["TrainConfig", "augment", "dihedral", "predict", "seed_everything", "train", "weighted_bce"]


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                 total_weight: torch.Tensor | None = None) -> torch.Tensor:
    """sum_i w_i BCE(logit_i, y_i) / sum_i w_i; with ``total_weight``, the sum over these rows
    divided by it instead (one rank's share of a batch whose weights sum to ``total_weight``)."""
    per = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    return (per * weights).sum() / (weights.sum() if total_weight is None else total_weight)


@lru_cache(maxsize=8)
def _dihedral_maps(h: int, w: int, device: str) -> torch.Tensor:
    """(8, h*w) int64: for group element c (rot90 by c % 4 over dims (H, W), then a flip of W
    when c >= 4) the flat source pixel of every output pixel -- the same torch ops applied
    to the pixel numbers, so a gather through the map is exactly that transform."""
    grid = torch.arange(h * w).reshape(1, 1, h, w)
    maps = []
    for c in range(8):
        m = torch.rot90(grid, c % 4, dims=(2, 3))
        maps.append((torch.flip(m, dims=(3,)) if c >= 4 else m).reshape(-1))
    return torch.stack(maps).to(device)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """An independent element of the dihedral group D4 (rot90 k in 0..3, optional
    horizontal flip) for every sample; brightness untouched.  ``gen`` is a CPU generator
    (the draw is reproducible on any device); the transforms run where ``x`` lives, as one
    gather through precomputed pixel maps (no host synchronisation on a GPU; a pure
    permutation, so the values are those of ``torch.rot90``/``torch.flip``)."""
    return dihedral(x, torch.randint(0, 8, (x.shape[0],), generator=gen))


def dihedral(x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Sample i of ``x`` transformed by group element ``code[i]`` (0..7, ``_dihedral_maps``)."""
    n, c, h, w = x.shape
    if h != w:
        raise ValueError(f"augment needs square stamps (rot90 keeps the shape), got {h}x{w}")
    src = _dihedral_maps(h, w, str(x.device)).index_select(0, code.to(x.device))  # (n, h*w)
    out = torch.gather(x.reshape(n, c, h * w), 2, src[:, None, :].expand(n, c, h * w))
    return out.reshape(n, c, h, w)


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


class _Step:
    """One optimisation step: bf16 autocast forward, weighted BCE, backward, AdamW, schedule.

    Eager by default.  ``cuda_graph`` (CUDA only): each batch shape (the full batch and the
    epoch's last, shorter one) runs ``warmup`` eager steps on a side stream, is then captured
    once into a CUDA graph (forward + backward + fused AdamW, the whole step as one launch;
    PyTorch's "whole network capture") and replayed from then on with the batch copied into
    its static inputs.  The learning rate is a device tensor the graph reads; the schedule's
    values come from the same ``CosineAnnealingLR`` stepped on a host-side stand-in optimiser
    (so they are the eager path's floats) and are written into it before each step.  For
    ResNet-18 the graphed steps gave bit-identical weights to eager steps on an H200
    (bench/bench_detector.py); a model with dropout (EfficientNet-B0) draws its masks from the
    graph-safe generator offsets instead, so its weights match eager ones in distribution only."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, t_max: int, device: str, cuda_graph: bool,
                 warmup: int = 3):
        cuda = device.startswith("cuda")
        self.graph = bool(cuda_graph and cuda)
        self.model, self.cuda, self.warmup = model, cuda, warmup
        params = list(model.parameters())
        if self.graph:
            self.lr = torch.tensor(cfg.lr, device=device)
            self.opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=cfg.weight_decay, fused=True, capturable=True)
            stand_in = torch.optim.SGD([torch.zeros(1)], lr=cfg.lr)
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(stand_in, T_max=t_max)
            stand_in.step()  # no gradients: changes nothing, marks the stand-in as stepped for the scheduler
            self.side = torch.cuda.Stream()
        else:
            self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                         **({"fused": True} if cuda else {}))
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=t_max)
        self.graphs: dict[int, tuple] = {}
        self.eager_runs: dict[int, int] = {}

    def _loss(self, xb, yb, wb, cache: bool = True, total_weight=None):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda, cache_enabled=cache):
            return weighted_bce(self.model(xb).squeeze(1), yb, wb, total_weight)

    def _eager(self, xb, yb, wb, total_weight=None) -> torch.Tensor:
        loss = self._loss(xb, yb, wb, total_weight=total_weight)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor, total_weight=None) -> torch.Tensor:
        """One step on the batch; ``total_weight`` (eager only): the loss is this share's weighted
        sum over it (a data-parallel rank's share of the batch, ``train(data_parallel=True)``)."""
        if not self.graph:
            loss = self._eager(xb, yb, wb, total_weight)
            self.sched.step()
            return loss
        self.lr.fill_(self.sched.get_last_lr()[0])
        n = xb.shape[0]
        if n in self.graphs:
            g, sx, sy, sw, sloss = self.graphs[n]
            sx.copy_(xb), sy.copy_(yb), sw.copy_(wb)
            g.replay()
            loss = sloss.detach().clone()
        elif self.eager_runs.get(n, 0) < self.warmup:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                loss = self._eager(xb, yb, wb)
            torch.cuda.current_stream().wait_stream(self.side)
            self.eager_runs[n] = self.eager_runs.get(n, 0) + 1
        else:
            sx, sy, sw = xb.clone(), yb.clone(), wb.clone()
            g = torch.cuda.CUDAGraph()
            self.opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(g):
                sloss = self._loss(sx, sy, sw, cache=False)
                sloss.backward()
                self.opt.step()
            self.graphs[n] = (g, sx, sy, sw, sloss)
            g.replay()
            loss = sloss.detach().clone()
        self.sched.step()
        return loss


def train(cfg: TrainConfig, x_train, y_train, w_train, x_val, y_val, device: str = "cpu", log=print,
          cuda_graph: bool = False, data_parallel: bool = False):
    """Returns (best model state dict on the CPU, history list, info dict).

    ``x_*`` are preprocessed stamps (numpy or torch; moved to ``device`` once).
    ``cuda_graph``: on CUDA, replay each step from a captured graph (``_Step``).

    ``data_parallel``: this process is one rank of an initialised ``torch.distributed`` group (one
    process per device as ``torchrun`` starts them; NCCL on GPUs, gloo on the CPU), every rank
    called with the same arguments.  Each rank holds the whole split on its device and draws the
    same batches and augmentations (the same seeded generator), runs forward and backward on its
    ``ranks.rank_rows`` share of each batch with the loss divided by the whole batch's weight
    (``weighted_bce(total_weight=)``, times the world size that DDP's gradient average divides
    by), so the all-reduced gradient is the whole batch's.  On CUDA the batch norms are
    synchronised (``SyncBatchNorm``: the whole batch's statistics, as in one process), so a step is
    the single-process step up to float summation order; gloo has no ``SyncBatchNorm``, so on the
    CPU each rank's batch norms see its share (DDP's default; rank 0's running statistics are
    broadcast).  Validation: each rank scores its share of the validation split, all-gathered, so
    every rank takes the same early-stopping decision and returns the same state.  Steps run eager
    (``cuda_graph`` is not used); a batch of fewer rows than ranks (an epoch's last) is skipped."""
    from lensaudit.detector.models import build_model
    from lensaudit.detector.ranks import all_gather_rows, process_group, rank_rows

    if not (np.asarray(y_val) == 1).any() or not (np.asarray(y_val) == 0).any():
        raise ValueError("the validation split needs both classes: early stopping on val AUC is undefined otherwise")
    rank, world = process_group("train(data_parallel=True)") if data_parallel else (0, 1)
    seed_everything(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    cuda = device.startswith("cuda")
    model = build_model(cfg.arch)
    if data_parallel and cuda:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    net = model
    if data_parallel:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        index = torch.device(device).index
        net = DistributedDataParallel(model, device_ids=[torch.cuda.current_device() if index is None else index]
                                      if cuda else None)
        cuda_graph = False
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
    step = _Step(net, cfg, max(1, cfg.epochs * steps), device, cuda_graph)
    best, best_auc, best_epoch, bad, history = None, -1.0, -1, 0, []
    stop = "max_epochs"
    train_time, seen = 0.0, 0
    for epoch in range(cfg.epochs):
        net.train()
        t0 = time.perf_counter()
        if n_neg_epoch < len(neg_idx):
            pool = torch.cat([pos_idx, neg_idx[torch.randperm(len(neg_idx), generator=gen)[:n_neg_epoch]]])
            perm = pool[torch.randperm(len(pool), generator=gen)]
        else:
            perm = torch.randperm(n, generator=gen)
        loss_sum = torch.zeros((), device=device)
        perm = perm.to(device)  # one copy per epoch; each step slices it on the device
        steps_run = 0
        for s in range(steps):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size].sort().values
            rows, total = len(idx), None
            if world == 1:
                xb = augment(xt.index_select(0, idx), gen)
            else:  # the whole batch's draws on every rank, then this rank's share
                code = torch.randint(0, 8, (rows,), generator=gen)
                if rows < world:
                    continue
                total = wt[idx].sum() / world
                share = rank_rows(rows, rank, world)
                idx = idx[share]
                xb = dihedral(xt.index_select(0, idx), code[share])
            if cuda:
                xb = xb.contiguous(memory_format=torch.channels_last)
            loss_sum += step(xb, yt[idx], wt[idx], total)
            seen += rows
            steps_run += 1
        if world > 1:  # each rank's loss is its share's part of the batch loss, times world
            dist.all_reduce(loss_sum)
            loss_sum /= world
            for buf in model.buffers():  # rank 0's batch-norm statistics on every rank (gloo: per share)
                dist.broadcast(buf, 0)
        mean_loss = float(loss_sum) / max(1, steps_run)  # one device sync per epoch
        train_time += time.perf_counter() - t0
        if world == 1:
            scores = predict(model, x_val, device)
        else:
            val_share = rank_rows(len(x_val), rank, world)
            scores = all_gather_rows(predict(model, x_val[val_share], device), len(x_val), device)
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
            "mean_epoch_train_s": train_time / max(1, len(history)), "device": device,
            "cuda_graph": step.graph}
    if data_parallel:
        info.update(data_parallel_ranks=world, sync_batchnorm=cuda)
    return best, history, info
