"""Benchmark: data-parallel scoring from the cutout store on several GPUs of one host
(``detector.score.score_store_ranks``, one process per GPU, NCCL), against one GPU scoring the
whole index alone in the same run (rank 0, the others waiting): img/s of each, the scaling
(the issue asks >= 1.8x on 2 GPUs) and the max |dlogit| between them.  Page cache warm (every
variant is run once before it is timed).  On a CPU machine the same runs on gloo (correctness only).
Run: torchrun --standalone --nproc-per-node=2 bench/bench_scan_ranks.py [--stamps 131072] [--crop 64]
     [--workers 4] [--compiled --cuda-graph]     (PYTHONPATH=. from the repository root)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    import torch
    import torch.distributed as dist

    from bench._ranks import init_ranks, timed
    from lensaudit.cutouts.store import SHARD_ROWS, CutoutReader, write_shard
    from lensaudit.detector.models import build_model
    from lensaudit.detector.score import score_store, score_store_ranks

    ap = argparse.ArgumentParser()
    ap.add_argument("--stamps", type=int, default=131072)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--workers", type=int, default=4, help="reader threads per process")
    ap.add_argument("--compiled", action="store_true")
    ap.add_argument("--cuda-graph", action="store_true")
    ns = ap.parse_args()
    cuda, rank, world, local, dev = init_ranks()
    box = [None]
    if rank == 0:  # one store for every process of the host
        store = Path(tempfile.mkdtemp(prefix="bench_ranks_"))
        rng = np.random.default_rng(0)
        rows = []
        for k in range(0, ns.stamps, SHARD_ROWS):
            rel = f"shards/s-{k // SHARD_ROWS:04d}.npy"
            m = min(SHARD_ROWS, ns.stamps - k)
            write_shard(store / rel, rng.normal(0, 0.01, (m, 3, 101, 101)).astype(np.float32))
            rows += [(rel, i) for i in range(m)]
        idx = pd.DataFrame({"cutout_path": [r for r, _ in rows], "cutout_offset": [o for _, o in rows], "cutout_ok": True})
        idx.to_parquet(store / "index.parquet")
        box = [str(store)]
    dist.broadcast_object_list(box, src=0)
    store = Path(box[0])
    idx = pd.read_parquet(store / "index.parquet")
    reader = CutoutReader(store)
    torch.manual_seed(0)
    model = build_model("resnet18").to(dev)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    model.eval()
    kw = dict(crop=ns.crop, batch=ns.batch, workers=ns.workers, compiled=ns.compiled, cuda_graph=ns.cuda_graph)

    def alone():
        return score_store(idx, reader, model, dev, **kw) if rank == 0 else None
    timed(alone, cuda)
    one, t_one = timed(alone, cuda)
    timed(lambda: score_store_ranks(idx, reader, model, dev, **kw), cuda)
    many, t_many = timed(lambda: score_store_ranks(idx, reader, model, dev, **kw), cuda)
    if rank == 0:
        name = torch.cuda.get_device_name(local) if cuda else "cpu"
        print(f"device: {world} x {name}, torch {torch.__version__}, {os.cpu_count()} CPU cores; {len(idx)} stamps, "
              f"crop {ns.crop}, batch {ns.batch}, {ns.workers} reader threads per process, compiled {ns.compiled}, "
              f"cuda_graph {ns.cuda_graph}")
        print(f"one device alone (reference): {len(idx) / t_one:,.0f} img/s")
        print(f"{world} ranks, data-parallel: {len(idx) / t_many:,.0f} img/s; scaling {t_one / t_many:.2f}x; "
              f"max |dlogit| vs one device {np.abs(many - one).max():.2e}")
        shutil.rmtree(store, ignore_errors=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
