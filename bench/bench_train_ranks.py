"""Benchmark: data-parallel training on several GPUs of one host (``detector.train.train(...,
data_parallel=True)``: one process per GPU, NCCL, SyncBatchNorm, each rank the whole training set
resident on its GPU and its share of every batch), against one GPU training alone in the same run
(rank 0, the others waiting) at the per-GPU batch and at the ranks' whole batch: training img/s
(the training loop; validation apart) of each, the scaling (the issue asks >= 1.8x on 2 GPUs), the
losses.  Synthetic 64x64 inputs (normal noise, 1 % positives), ResNet-18, eager steps in every run
(the data-parallel steps are eager; the single-GPU CUDA-graph steps are in bench_detector.py).
On a CPU machine the same runs on gloo (correctness only).
Run: torchrun --standalone --nproc-per-node=2 bench/bench_train_ranks.py [--stamps 65536] [--batch-per-rank 256]
     [--epochs 2]     (PYTHONPATH=. from the repository root)
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def main() -> None:
    import torch
    import torch.distributed as dist

    from bench._ranks import init_ranks, timed
    from lensaudit.detector.train import TrainConfig, train

    ap = argparse.ArgumentParser()
    ap.add_argument("--stamps", type=int, default=65536)
    ap.add_argument("--batch-per-rank", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ns = ap.parse_args()
    cuda, rank, world, local, dev = init_ranks()
    rng = np.random.default_rng(0)  # the same data on every rank
    x = torch.from_numpy(rng.normal(0, 1, (ns.stamps, 3, 64, 64)).astype(np.float32)).to(dev)
    y = (rng.random(ns.stamps) < 0.01).astype(np.int64)
    y[:200] = 1
    w = np.ones(ns.stamps)
    nv = min(4096, ns.stamps)

    def cfg(batch):
        return TrainConfig(arch="resnet18", epochs=ns.epochs, batch_size=batch, patience=10, seed=1)

    key_of = {"per_rank": f"one device, batch {ns.batch_per_rank}",
             "whole": f"one device, batch {ns.batch_per_rank * world}",
             "ranks": f"{world} ranks, batch {ns.batch_per_rank} per rank ({ns.batch_per_rank * world} in all)"}
    results = {}
    for batch in dict.fromkeys((ns.batch_per_rank, ns.batch_per_rank * world)):  # one run when world is 1
        out, wall = timed(lambda: train(cfg(batch), x, y, w, x[:nv], y[:nv], device=dev, log=lambda *_: None)
                          if rank == 0 else None, cuda)
        results[key_of["per_rank" if batch == ns.batch_per_rank else "whole"]] = (out, wall)
    out, wall = timed(lambda: train(cfg(ns.batch_per_rank * world), x, y, w, x[:nv], y[:nv], device=dev,
                                    log=lambda *_: None, data_parallel=True), cuda)
    results[key_of["ranks"]] = (out, wall)
    if rank == 0:
        name = torch.cuda.get_device_name(local) if cuda else "cpu"
        print(f"device: {world} x {name}, torch {torch.__version__}, {os.cpu_count()} CPU cores; {ns.stamps} stamps "
              f"64x64 resident on each device, ResNet-18, {ns.epochs} epochs, eager steps")
        for label, ((state, hist, info), wall) in results.items():
            print(f"{label}: {info['train_images_per_s']:,.0f} img/s in the training loop; wall {wall:.1f} s with "
                  f"validation; loss {[round(h['train_loss'], 5) for h in hist]} "
                  f"val AUC {[round(h['val_auc'], 4) for h in hist]}")
        rate = {k: results[v][0][2]["train_images_per_s"] for k, v in key_of.items()}
        print(f"scaling: {rate['ranks'] / rate['per_rank']:.2f}x the one device at the per-rank batch, "
              f"{rate['ranks'] / rate['whole']:.2f}x the one device at the same whole batch")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
