"""Benchmark: detector training and inference throughput (the ``lensaudit.detector`` code).

Writes N synthetic stamps into a real cutout store (shards + index), then
* inference: ``lensaudit.detector.score.score_store`` (threaded shard reads into pinned
  buffers, async copy, ``raw_robust`` on the device, ResNet-18 bf16 channels_last) at 64^2
  and 101^2 crops, I/O included (page cache warm: the second pass is timed);
* training: ``lensaudit.detector.train.train`` on preprocessed 64^2 stamps resident on
  the device (its own batching, per-sample augmentation, validation), one timed epoch
  after a warm-up epoch; img/s counts the training steps incl. the batch gather.
Reference in the same run: the naive loop (single-threaded read, pageable copy, no
overlap) that the previous version measured.
Run: PYTHONPATH=. python bench/bench_detector.py --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    import torch

    from lensaudit.cutouts.store import SHARD_ROWS, CutoutReader, write_shard
    from lensaudit.detector.models import build_model
    from lensaudit.detector.preprocess import raw_robust
    from lensaudit.detector.score import score_store
    from lensaudit.detector.train import TrainConfig, train

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=65536)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--train-n", type=int, default=65536)
    ns = ap.parse_args()
    dev = ns.device
    cuda = dev.startswith("cuda")
    rng = np.random.default_rng(0)
    store = Path(tempfile.mkdtemp(prefix="bench_det_"))
    rows = []
    for k in range(0, ns.n, SHARD_ROWS):
        rel = f"shards/s-{k // SHARD_ROWS:04d}.npy"
        write_shard(store / rel, rng.normal(0, 0.01, (SHARD_ROWS, 3, 101, 101)).astype(np.float32))
        rows += [(rel, i) for i in range(SHARD_ROWS)]
    idx = pd.DataFrame({"cutout_path": [r for r, _ in rows], "cutout_offset": [o for _, o in rows], "cutout_ok": True})
    reader = CutoutReader(store)
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    print(f"device: {name} torch={torch.__version__} stamps={len(idx)} batch={ns.batch} workers={ns.workers}")
    model = build_model("resnet18").to(dev)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    model.eval()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def naive(crop):
        with torch.no_grad():
            for s in range(0, len(idx), ns.batch):
                raw = torch.from_numpy(reader.read(idx.iloc[s:s + ns.batch])).to(dev)
                xb, _ = raw_robust(raw, crop=crop)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    model(xb.contiguous(memory_format=torch.channels_last) if cuda else xb)
        sync()

    for crop in (64, 101):
        for label, fn in (("naive loop (reference)", lambda: naive(crop)),
                          ("score_store", lambda: score_store(idx, reader, model, dev, crop, ns.batch, ns.workers))):
            fn()
            t0 = time.perf_counter()
            fn()
            sync()
            dt = time.perf_counter() - t0
            print(f"inference {crop}x{crop} bf16 from the store, {label}: {len(idx) / dt:,.0f} img/s")
    x, _ = raw_robust(torch.from_numpy(reader.read(idx.iloc[:ns.train_n])).to(dev), crop=64)
    y = (rng.random(len(x)) < 0.01).astype(np.int64)
    y[:200] = 1
    w = np.ones(len(x))
    cfg = TrainConfig(arch="resnet18", epochs=2, batch_size=256, patience=10, seed=1)
    t0 = time.perf_counter()
    _, hist, info = train(cfg, x, y, w, x[:4096], y[:4096], device=dev, log=lambda *_: None)
    print(f"training 64x64 resnet18 batch 256, device-resident data, per-sample augmentation: "
          f"{info['train_images_per_s']:,.0f} img/s (2 epochs); epoch times "
          f"{[round(h['epoch_train_s'], 2) for h in hist]} s for {len(x)} stamps; total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
