"""Benchmark: detector training and inference throughput (the ``lensaudit.detector`` code).

Writes N synthetic stamps into a real cutout store (content shards + index), then
* inference: read batches from the store (I/O included), copy to the device, ``raw_robust``
  preprocessing there, ResNet-18 forward in bf16 (channels_last) at 64^2 and 101^2 crops;
* training: ``lensaudit.detector.train.train`` for one epoch on preprocessed 64^2 stamps
  (its own batching, augmentation and host-to-device copies included).
Reports images/s and the device.  Run: PYTHONPATH=. python bench/bench_detector.py --device cuda
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
    from lensaudit.detector.train import TrainConfig, train

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=32768)
    ap.add_argument("--batch", type=int, default=4096)
    ns = ap.parse_args()
    dev = ns.device
    rng = np.random.default_rng(0)
    store = Path(tempfile.mkdtemp(prefix="bench_det_"))
    block = rng.normal(0, 0.01, (SHARD_ROWS, 3, 101, 101)).astype(np.float32)
    rows = []
    for k in range(0, ns.n, SHARD_ROWS):
        rel = f"shards/s-{k // SHARD_ROWS:04d}.npy"
        write_shard(store / rel, block)
        rows += [(rel, i) for i in range(SHARD_ROWS)]
    idx = pd.DataFrame({"cutout_path": [r for r, _ in rows], "cutout_offset": [o for _, o in rows], "cutout_ok": True})
    reader = CutoutReader(store)
    name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else "cpu"
    print(f"device: {name} torch={torch.__version__}")
    model = build_model("resnet18").to(dev).to(memory_format=torch.channels_last).eval()
    for crop in (64, 101):
        def run():
            for s in range(0, ns.n, ns.batch):
                raw = torch.from_numpy(reader.read(idx.iloc[s:s + ns.batch])).pin_memory().to(dev, non_blocking=True)
                xb, _ = raw_robust(raw, crop=crop)  # on the GPU
                xb = xb.contiguous(memory_format=torch.channels_last)
                with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.startswith("cuda")):
                    model(xb)
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
        run()
        t0 = time.perf_counter()
        run()
        dt = time.perf_counter() - t0
        print(f"inference {crop}x{crop} bf16 from the store (read + raw_robust + forward): {ns.n / dt:,.0f} img/s")
    x, _ = raw_robust(reader.read(idx.iloc[:16384]), crop=64)
    y = (rng.random(len(x)) < 0.01).astype(np.int64)
    y[:200] = 1
    w = np.ones(len(x))
    cfg = TrainConfig(arch="resnet18", epochs=2, batch_size=256, patience=10, seed=1)
    t0 = time.perf_counter()
    _, hist, info = train(cfg, x, y, w, x[:2048], y[:2048], device=dev, log=lambda *_: None)
    print(f"training 64x64 resnet18 batch 256 (lensaudit.detector.train, incl. its data path): "
          f"{info['train_images_per_s']:,.0f} img/s; 2 epochs of {len(x)} in {time.perf_counter() - t0:.1f} s "
          f"(incl. validation)")


if __name__ == "__main__":
    main()
